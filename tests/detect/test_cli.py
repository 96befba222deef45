"""The command line: stdin, stdout, shards, bad options answered with a message (never a traceback)."""

import json

from typer.testing import CliRunner

from indicator_exchange.cli import app as cli
from tests.detect.traffic import Log, campaign


def _log() -> bytes:
    log = Log()
    log.honest_background(60)
    campaign(log)
    return log.bytes()


def _run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


class TestDetectCli:
    def test_help_names_every_option(self) -> None:
        code, out, _ = _run("detect", "--help")
        assert code == 0
        for option in (
            "--output",
            "--clusters",
            "--errors",
            "--window",
            "--bucket",
            "--shard",
            "--push",
            "--collection",
            "--url",
            "--key",
            "--as",
            "--batch",
            "--json",
        ):
            assert option in out

    def test_stdin_to_stdout(self) -> None:
        code, out, err = _run("detect", "-", "--json", stdin=_log())
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines
        assert {line["kind"] for line in lines} >= {"proxy_ip"}
        summary = json.loads(err.strip().splitlines()[-1])
        assert summary["clusters"] == 1

    def test_shards_partition_the_events(self) -> None:
        data = _log()
        counts = []
        for shard in ("0/2", "1/2"):
            code, _, err = _run("detect", "-", "--json", "--shard", shard, stdin=data)
            assert code == 0, err
            counts.append(json.loads(err.strip().splitlines()[-1]))
        assert counts[0]["events"] + counts[1]["events"] == len(data.splitlines())
        assert counts[0]["events_other_shard"] == counts[1]["events"]

    def test_bad_options_are_messages(self) -> None:
        for args in (["--window", "soon"], ["--shard", "3/2"], ["--window", "30s"], ["--bucket", "2d"]):
            code, _, err = _run("detect", "-", *args, stdin=b"")
            assert code in (1, 2), args
            assert "Traceback" not in err

    def test_a_missing_file_is_a_message(self) -> None:
        code, _, err = _run("detect", "/nonexistent/traffic.jsonl")
        assert code == 1
        assert "cannot read" in err
