from volumetry import __version__
from volumetry.cli import main


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2


def test_unknown_command_is_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("volumetry: error: argument COMMAND: invalid choice: 'no-such-command'")
    assert err[0].endswith("see 'volumetry --help'")


def test_a_usage_error_of_a_command_is_one_line(capsys):
    assert main(["run", "--jobs", "two"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["volumetry run: error: argument --jobs: 'two' is not a whole number; see 'volumetry run --help'"]
