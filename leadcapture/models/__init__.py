"""Data and invariants. Imports nothing above itself."""

from leadcapture.models.base import Base
from leadcapture.models.bounces import BounceEvent, BounceKind, BounceSource
from leadcapture.models.content import (
    Impression,
    LocalizedText,
    Question,
    QuestionKind,
    QuestionOption,
    Report,
    ReportFile,
    Widget,
    WidgetImpressions,
    WidgetQuestion,
    localized,
)
from leadcapture.models.delivery import MARKETING_KINDS, Delivery, DeliveryKind, DeliveryStatus, StreamPause
from leadcapture.models.interests import Click, InterestEvent, InterestScore, SignalSource, SweepMark, Topic
from leadcapture.models.limits import RateLimitCounter
from leadcapture.models.people import (
    SUPPRESSED_STATUSES,
    Answer,
    AnswerSource,
    ConsentEvent,
    ConsentKind,
    Intake,
    Submission,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from leadcapture.models.sequences import Enrollment, EnrollmentState, OnChange, Sequence, SequenceStep
from leadcapture.models.user import Role, User

__all__ = [
    "MARKETING_KINDS",
    "SUPPRESSED_STATUSES",
    "Answer",
    "AnswerSource",
    "Base",
    "BounceEvent",
    "BounceKind",
    "BounceSource",
    "Click",
    "ConsentEvent",
    "ConsentKind",
    "Delivery",
    "DeliveryKind",
    "DeliveryStatus",
    "Enrollment",
    "EnrollmentState",
    "Impression",
    "Intake",
    "InterestEvent",
    "InterestScore",
    "LocalizedText",
    "OnChange",
    "Question",
    "QuestionKind",
    "QuestionOption",
    "RateLimitCounter",
    "Report",
    "ReportFile",
    "Role",
    "Sequence",
    "SequenceStep",
    "SignalSource",
    "StreamPause",
    "Submission",
    "Subscriber",
    "SubscriberStatus",
    "Suppression",
    "SweepMark",
    "Topic",
    "User",
    "Widget",
    "WidgetImpressions",
    "WidgetQuestion",
    "localized",
]
