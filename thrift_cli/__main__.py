from thrift_cli.cli import run

run()
