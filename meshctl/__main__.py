from meshctl.cli import app

app(prog_name="meshctl")
