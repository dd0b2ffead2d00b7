from startctl.main import app

app()
