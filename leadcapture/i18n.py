"""The product's own words, per locale. Editor texts live in content; these are the defaults around them."""

from __future__ import annotations

from typing import Any

LOCALES = ("nl", "en")
DEFAULT_LOCALE = "en"

CATALOG: dict[str, dict[str, str]] = {
    "en": {
        # widget
        "widget.start": "Yes, send me the report",
        "widget.start_ready": "Get the report",
        "widget.next": "Next",
        "widget.back": "Back",
        "widget.progress": "Question {n} of {total}",
        "widget.email_label": "Your email address",
        "widget.first_name_label": "Your first name (optional)",
        "widget.reader": "Your email address: {email}",
        "widget.reader_unnamed": "We use the email address you gave before.",
        "widget.not_you": "Not you?",
        "widget.consent_report": "Email me the report “{title}”.",
        # The sequences box names what shapes the emails besides the answers, as LEADCAPTURE_TRACKING has it
        # (services/widgets.py sequences_wording): clicks in them and articles read from them; the clicks; nothing.
        "widget.consent_sequences": (
            "Also send me follow-up emails that fit my answers and what I read and click."
            " I can unsubscribe at any time."
        ),
        "widget.consent_sequences_clicks": (
            "Also send me follow-up emails that fit my answers and what I click in them."
            " I can unsubscribe at any time."
        ),
        "widget.consent_sequences_answers": (
            "Also send me follow-up emails that fit my answers. I can unsubscribe at any time."
        ),
        "widget.submit": "Send me the report",
        "widget.sending": "Sending…",
        "widget.success": "Almost done! Check your inbox and click the link in our email to get the report.",
        "widget.error_answer": "Please choose an answer.",
        "widget.multi": "You may choose more than one.",
        "widget.error_email": "Please enter a valid email address.",
        "widget.error_consent": "Tick this box so we may email you the report.",
        "widget.error_network": "We could not reach the server. Your answers are kept: please try again.",
        "widget.error_server": "Something went wrong on our side. Please try again in a moment.",
        "widget.error_busy": "Too many sign-ups are coming from here right now. Please try again in a few minutes.",
        "widget.yes": "Yes",
        "widget.no": "No",
        # submission errors
        "error.email_required": "Enter your email address.",
        "error.email_invalid": "This is not a valid email address.",
        "error.answer_required": "Answer this question.",
        "error.answer_invalid": "Choose one of the offered answers.",
        "error.consent_required": "The report can only be sent if you agree to receive it by email.",
        # emails
        "email.greeting": "Hello,",
        "email.greeting_name": "Hello {name},",
        "email.confirm.subject": "Confirm your address to get “{title}”",
        "email.confirm.intro": "You asked for our report “{title}”. Please confirm that this is your address:",
        "email.confirm.button": "Confirm and get the report",
        "email.confirm.ignore": "If you did not ask for this, ignore this email: nothing more will be sent.",
        "email.report.subject": "Your report: {title}",
        "email.report.intro": "Thank you for confirming. Here is your report “{title}”:",
        "email.report.button": "Download the report",
        "email.report.expiry": "The download link works for {days} days.",
        "email.change.intro": "This request came with other answers than the ones we have from you. If they are yours, they would change:",
        "email.change.on_confirm": "This request came with other answers than the ones we have from you. Confirming also changes them:",
        "email.change.unanswered": "not answered",
        "email.change.button": "Yes, update my answers",
        "email.change.ignore": "If someone else typed your address, ignore this: nothing changes unless you click.",
        "email.footer": "You receive this email because you asked for it on {site}.",
        "email.footer_marketing": "You receive this email because you signed up for follow-up emails on {site}.",
        "email.sender": "Sent by {name} ({address}).",
        "email.unsubscribe_question": "No longer want these emails?",
        "email.unsubscribe": "Unsubscribe",
        "email.preferences": "Change your answers / preferences",
        # subscriber pages
        "page.confirm.title": "Confirm your email address",
        "page.confirm.text": "Click the button to confirm your address and receive “{title}”.",
        "page.confirm.button": "Confirm my address",
        "page.confirmed.title": "Thank you, your address is confirmed",
        "page.confirmed.text": "We have emailed you the report “{title}”. It should arrive within a minute.",
        "page.invalid.title": "This link does not work",
        "page.invalid.text": "The link is incomplete or was changed. Please use the link from the email exactly.",
        "page.expired.title": "This link has expired",
        "page.expired_confirm.text": "Please ask for the report again from the article where you found it.",
        "page.expired_answer.text": "Answer links work for a year. Your preference page has every question, with a fresh answer for each.",
        "page.expired_answer.link": "Go to my preferences",
        "page.download.title": "Download “{title}”",
        "page.download.text": "Click the button to download the report as {filename}.",
        "page.download.button": "Download the report",
        "page.download_expired.text": "The download link for “{title}” has expired. We can email you a new one.",
        "page.download_expired.button": "Email me a new link",
        "page.download_renewed.title": "A new link is on its way",
        "page.download_renewed.text": "Check your inbox for a fresh download link.",
        "page.unsubscribe.title": "Unsubscribe from our emails",
        "page.unsubscribe.text": "Click the button and {email} will get no more follow-up emails from us.",
        "page.unsubscribe.button": "Unsubscribe",
        "page.unsubscribed.title": "You are unsubscribed",
        "page.unsubscribed.text": "{email} gets no more follow-up emails from us. Reports you ask for still arrive.",
        "email.refresh.subject": "Is this still right?",
        "email.refresh.first_subject": "A quick question",
        "email.refresh.first_intro": "One question, so the emails you get fit you better. Click the answer that fits you:",
        "email.refresh.intro": "On {date} you answered the question below. Click the answer that fits you now:",
        "email.refresh.still": "Still right: {answer}",
        "email.refresh.change": "A different answer? Change it on your preference page",
        "email.refresh.why": "We ask now and then so the emails you get keep fitting your interests.",
        "page.answer.title": "Is this your answer?",
        "page.answer.button": "Yes, save this answer",
        "page.answer.other": "Another answer:",
        "page.answer.saved": "Thank you, your answer is saved. Your emails follow it from now on.",
        "page.answer.next": "One more question, if you like:",
        "page.answer.done": "That is everything for now.",
        "page.preferences.title": "Your answers and emails",
        "page.preferences.intro": "Interests change. Keep your answers current and the emails you get will fit.",
        "page.preferences.answered": "answered {date}",
        "page.preferences.unanswered": "not answered yet",
        "page.preferences.save": "Save my answers",
        "page.preferences.saved": "Saved. Your emails follow your new answers from now on.",
        "page.preferences.unchanged": "Nothing changed.",
        "page.preferences.invalid": "Some answers could not be saved; nothing was changed. Please choose from the options.",
        "page.preferences.sequences": "Email series you receive now",
        "page.preferences.no_sequences": "None at the moment.",
        "page.preferences.unsubscribe": "Unsubscribe from all follow-up emails",
        "page.preferences.pause": "Pause follow-up emails for 30 days",
        "page.preferences.resume": "Resume follow-up emails now",
        "page.preferences.paused": "Paused: no follow-up emails for 30 days. They pick up where they were after that.",
        "page.preferences.resumed": "Follow-up emails are on again.",
        "page.preferences.paused_until": "Follow-up emails are paused until {date}.",
        "page.preferences.change_intro": "These answers were given with a request for a report under your address. Apply them if they are yours:",
        "page.preferences.change_apply": "Update my answers",
        "page.preferences.first_name": "First name (optional)",
    },
    "nl": {
        "widget.start": "Ja, stuur mij het rapport",
        "widget.start_ready": "Naar het rapport",
        "widget.next": "Volgende",
        "widget.back": "Terug",
        "widget.progress": "Vraag {n} van {total}",
        "widget.email_label": "Je e-mailadres",
        "widget.first_name_label": "Je voornaam (niet verplicht)",
        "widget.reader": "Je e-mailadres: {email}",
        "widget.reader_unnamed": "We gebruiken het e-mailadres dat je eerder gaf.",
        "widget.not_you": "Niet jij?",
        "widget.consent_report": "Mail mij het rapport “{title}”.",
        "widget.consent_sequences": (
            "Stuur mij ook vervolgmails die passen bij mijn antwoorden en bij wat ik lees en aanklik."
            " Ik kan me altijd afmelden."
        ),
        "widget.consent_sequences_clicks": (
            "Stuur mij ook vervolgmails die passen bij mijn antwoorden en bij wat ik erin aanklik."
            " Ik kan me altijd afmelden."
        ),
        "widget.consent_sequences_answers": (
            "Stuur mij ook vervolgmails die bij mijn antwoorden passen. Ik kan me altijd afmelden."
        ),
        "widget.submit": "Stuur mij het rapport",
        "widget.sending": "Bezig met versturen…",
        "widget.success": "Bijna klaar! Kijk in je inbox en klik op de link in onze e-mail om het rapport te krijgen.",
        "widget.error_answer": "Kies een antwoord.",
        "widget.multi": "Je mag meer dan één antwoord kiezen.",
        "widget.error_email": "Vul een geldig e-mailadres in.",
        "widget.error_consent": "Vink dit aan zodat we je het rapport mogen mailen.",
        "widget.error_network": "We konden de server niet bereiken. Je antwoorden zijn bewaard: probeer het opnieuw.",
        "widget.error_server": "Er ging bij ons iets mis. Probeer het zo nog eens.",
        "widget.error_busy": "Er komen hier nu te veel aanmeldingen vandaan. Probeer het over een paar minuten opnieuw.",
        "widget.yes": "Ja",
        "widget.no": "Nee",
        "error.email_required": "Vul je e-mailadres in.",
        "error.email_invalid": "Dit is geen geldig e-mailadres.",
        "error.answer_required": "Beantwoord deze vraag.",
        "error.answer_invalid": "Kies een van de gegeven antwoorden.",
        "error.consent_required": "We kunnen het rapport alleen sturen als je akkoord gaat met toezending per e-mail.",
        "email.greeting": "Hallo,",
        "email.greeting_name": "Hallo {name},",
        "email.confirm.subject": "Bevestig je adres en ontvang “{title}”",
        "email.confirm.intro": "Je vroeg om ons rapport “{title}”. Bevestig dat dit jouw adres is:",
        "email.confirm.button": "Bevestigen en rapport ontvangen",
        "email.confirm.ignore": "Heb je hier niet om gevraagd? Negeer deze e-mail dan: we sturen niets meer.",
        "email.report.subject": "Je rapport: {title}",
        "email.report.intro": "Bedankt voor het bevestigen. Hier is je rapport “{title}”:",
        "email.report.button": "Download het rapport",
        "email.report.expiry": "De downloadlink werkt {days} dagen.",
        "email.change.intro": "Bij deze aanvraag horen andere antwoorden dan we van je hebben. Als ze van jou zijn, verandert dit:",
        "email.change.on_confirm": "Bij deze aanvraag horen andere antwoorden dan we van je hebben. Met je bevestiging verandert ook dit:",
        "email.change.unanswered": "niet beantwoord",
        "email.change.button": "Ja, werk mijn antwoorden bij",
        "email.change.ignore": "Heeft iemand anders je adres ingevuld? Negeer dit dan: er verandert niets tenzij je klikt.",
        "email.footer": "Je ontvangt deze e-mail omdat je erom vroeg op {site}.",
        "email.footer_marketing": "Je ontvangt deze e-mail omdat je je op {site} aanmeldde voor vervolgmails.",
        "email.sender": "Verstuurd door {name} ({address}).",
        "email.unsubscribe_question": "Wil je deze e-mails niet meer ontvangen?",
        "email.unsubscribe": "Afmelden",
        "email.preferences": "Wijzig je antwoorden / voorkeuren",
        "page.confirm.title": "Bevestig je e-mailadres",
        "page.confirm.text": "Klik op de knop om je adres te bevestigen en “{title}” te ontvangen.",
        "page.confirm.button": "Bevestig mijn adres",
        "page.confirmed.title": "Bedankt, je adres is bevestigd",
        "page.confirmed.text": "We hebben je het rapport “{title}” gemaild. Het komt binnen een minuut binnen.",
        "page.invalid.title": "Deze link werkt niet",
        "page.invalid.text": "De link is onvolledig of gewijzigd. Gebruik de link uit de e-mail precies zoals hij is.",
        "page.expired.title": "Deze link is verlopen",
        "page.expired_confirm.text": "Vraag het rapport opnieuw aan via het artikel waar je het vond.",
        "page.expired_answer.text": "Antwoordlinks werken een jaar. Op je voorkeurenpagina staan alle vragen, elk opnieuw te beantwoorden.",
        "page.expired_answer.link": "Naar mijn voorkeuren",
        "page.download.title": "Download “{title}”",
        "page.download.text": "Klik op de knop om het rapport te downloaden als {filename}.",
        "page.download.button": "Download het rapport",
        "page.download_expired.text": "De downloadlink voor “{title}” is verlopen. We kunnen je een nieuwe mailen.",
        "page.download_expired.button": "Mail mij een nieuwe link",
        "page.download_renewed.title": "Er is een nieuwe link onderweg",
        "page.download_renewed.text": "Kijk in je inbox voor een nieuwe downloadlink.",
        "page.unsubscribe.title": "Afmelden voor onze e-mails",
        "page.unsubscribe.text": "Klik op de knop en {email} krijgt geen vervolgmails meer van ons.",
        "page.unsubscribe.button": "Afmelden",
        "page.unsubscribed.title": "Je bent afgemeld",
        "page.unsubscribed.text": "{email} krijgt geen vervolgmails meer van ons. Rapporten die je aanvraagt komen nog wel.",
        "email.refresh.subject": "Klopt dit nog?",
        "email.refresh.first_subject": "Een korte vraag",
        "email.refresh.first_intro": "Eén vraag, zodat de e-mails die je krijgt beter bij je passen. Klik op het antwoord dat bij je past:",
        "email.refresh.intro": "Op {date} beantwoordde je de vraag hieronder. Klik op het antwoord dat nu bij je past:",
        "email.refresh.still": "Klopt nog: {answer}",
        "email.refresh.change": "Een ander antwoord? Wijzig het op je voorkeurenpagina",
        "email.refresh.why": "We vragen dit af en toe, zodat de e-mails die je krijgt bij je interesses blijven passen.",
        "page.answer.title": "Is dit je antwoord?",
        "page.answer.button": "Ja, bewaar dit antwoord",
        "page.answer.other": "Een ander antwoord:",
        "page.answer.saved": "Bedankt, je antwoord is bewaard. Je e-mails volgen het vanaf nu.",
        "page.answer.next": "Nog een vraag, als je wilt:",
        "page.answer.done": "Dat was alles voor nu.",
        "page.preferences.title": "Je antwoorden en e-mails",
        "page.preferences.intro": "Interesses veranderen. Houd je antwoorden actueel, dan passen de e-mails die je krijgt.",
        "page.preferences.answered": "beantwoord op {date}",
        "page.preferences.unanswered": "nog niet beantwoord",
        "page.preferences.save": "Bewaar mijn antwoorden",
        "page.preferences.saved": "Bewaard. Je e-mails volgen vanaf nu je nieuwe antwoorden.",
        "page.preferences.unchanged": "Er is niets veranderd.",
        "page.preferences.invalid": "Sommige antwoorden konden niet worden bewaard; er is niets veranderd. Kies uit de opties.",
        "page.preferences.sequences": "E-mailreeksen die je nu ontvangt",
        "page.preferences.no_sequences": "Op dit moment geen.",
        "page.preferences.unsubscribe": "Afmelden voor alle vervolgmails",
        "page.preferences.pause": "Vervolgmails 30 dagen pauzeren",
        "page.preferences.resume": "Vervolgmails nu weer aanzetten",
        "page.preferences.paused": "Gepauzeerd: 30 dagen geen vervolgmails. Daarna gaan ze verder waar ze waren.",
        "page.preferences.resumed": "Vervolgmails staan weer aan.",
        "page.preferences.paused_until": "Vervolgmails zijn gepauzeerd tot {date}.",
        "page.preferences.change_intro": "Deze antwoorden zijn met een aanvraag voor een rapport onder jouw adres gegeven. Neem ze over als ze van jou zijn:",
        "page.preferences.change_apply": "Werk mijn antwoorden bij",
        "page.preferences.first_name": "Voornaam (niet verplicht)",
    },
}


def normalize_locale(locale: str | None) -> str:
    """A supported locale for any input: 'nl-BE' → 'nl', unknown → the default."""
    base = (locale or "").split("-")[0].split("_")[0].lower()
    return base if base in CATALOG else DEFAULT_LOCALE


def translate(locale: str, key: str, **params: Any) -> str:
    """The product text `key` in `locale`, with `{name}` placeholders filled."""
    text = CATALOG[normalize_locale(locale)].get(key) or CATALOG[DEFAULT_LOCALE][key]
    return text.format(**params) if params else text


def translations(locale: str, prefix: str) -> dict[str, str]:
    """Every text under `prefix.` in `locale`, keyed without the prefix."""
    catalog = CATALOG[normalize_locale(locale)]
    start = prefix + "."
    return {key.removeprefix(start): value for key, value in catalog.items() if key.startswith(start)}
