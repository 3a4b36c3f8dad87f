from volumetry import __version__
from volumetry.cli import main


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2


def test_unknown_command_is_usage_error(capsys):
    assert main(["no-such-command"]) == 2
