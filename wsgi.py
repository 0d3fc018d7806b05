from leadcapture import create_app

app = create_app()
