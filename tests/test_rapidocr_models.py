"""RapidOCR's models: the PP-OCRv5 files shipped in the package, checked by sha256 before any page; and the
evaluation-only swap (SCANARCHIVE_RAPIDOCR_MODELS, used by bench/recall_real.py): set wrong, the ingest stops
before any page with a plain ConfigError and the scan is kept."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanarchive.errors import ConfigError
from scanarchive.ingest import analyse
from scanarchive.ocr import rapidocr
from scanarchive.ocr.engine import OcrFailed
from tests.kits.helpers import cli, render_note

needs_rapidocr = pytest.mark.skipif(not rapidocr.available(), reason="rapidocr-onnxruntime is not installed")


def models_in(folder: Path, det: bytes = b"det", rec: bytes = b"rec") -> str:
    folder.mkdir(exist_ok=True)
    (folder / "det.onnx").write_bytes(det)
    (folder / "rec.onnx").write_bytes(rec)
    (folder / "keys.txt").write_text("a\nb\n")
    return os.pathsep.join(str(folder / n) for n in ("det.onnx", "rec.onnx", "keys.txt"))


@pytest.fixture(autouse=True)
def _fresh_checks() -> Iterator[None]:
    """The shipped models are checked once per process: each test starts without that memory."""
    rapidocr.shipped_models.cache_clear()
    rapidocr._sha256.cache_clear()
    yield
    rapidocr.shipped_models.cache_clear()
    rapidocr._sha256.cache_clear()


def test_unset_or_empty_uses_the_shipped_pp_ocrv5_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rapidocr.MODELS_ENV, raising=False)
    models = rapidocr.custom_models()
    assert models is not None and models == rapidocr.shipped_models()
    for path in models.argv():
        name = Path(path).name
        assert Path(path).parent == rapidocr.SHIPPED_DIR
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == rapidocr.SHIPPED_SHA256[name], name
    if rapidocr.available():
        version = importlib.metadata.version(rapidocr.DISTRIBUTION)
        assert rapidocr.version() == (
            f"rapidocr {version} (models PP-OCRv5 mobile, det {rapidocr.SHIPPED_SHA256['det.onnx'][:12]}, "
            f"rec {rapidocr.SHIPPED_SHA256['rec.onnx'][:12]})"
        ), "each page records which models read it"
    assert rapidocr.pool(1).models == models
    monkeypatch.setenv(rapidocr.MODELS_ENV, "  ")
    assert rapidocr.custom_models() == models


def test_the_models_in_rapidocrs_wheel_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rapidocr.MODELS_ENV, rapidocr.BUILTIN)
    assert rapidocr.custom_models() is None
    assert rapidocr.pool(1).models is None
    if rapidocr.available():
        assert rapidocr.version() == f"rapidocr {importlib.metadata.version(rapidocr.DISTRIBUTION)}"


@pytest.mark.parametrize("name", sorted(rapidocr.SHIPPED_SHA256))
def test_a_changed_shipped_model_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    copy = tmp_path / "ppocrv5"
    shutil.copytree(rapidocr.SHIPPED_DIR, copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (copy / name).write_bytes(bytes(data))
    monkeypatch.setattr(rapidocr, "SHIPPED_DIR", copy)
    monkeypatch.delenv(rapidocr.MODELS_ENV, raising=False)
    with pytest.raises(ConfigError) as caught:
        rapidocr.pool(1)
    assert f"the OCR model file {name} that comes with scanarchive has been changed or damaged" in caught.value.message
    assert "Reinstall" in caught.value.hint
    (copy / name).unlink()
    rapidocr.shipped_models.cache_clear()
    with pytest.raises(ConfigError, match=f"the OCR model file {name} that comes with scanarchive is missing"):
        rapidocr.custom_models()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("only-one.onnx", "should name 3 files, it names 1"),
        (f"a.onnx{os.pathsep}{os.pathsep}k.txt", "should name 3 files, it names 2"),
        (f"/no/such/det.onnx{os.pathsep}/no/rec.onnx{os.pathsep}/no/k.txt", "/no/such/det.onnx does not exist"),
    ],
)
def test_a_malformed_value_or_missing_file_is_refused(monkeypatch: pytest.MonkeyPatch, value: str, says: str) -> None:
    monkeypatch.setenv(rapidocr.MODELS_ENV, value)
    with pytest.raises(ConfigError) as caught:
        rapidocr.pool(1)
    assert rapidocr.MODELS_ENV in caught.value.message and says in caught.value.message
    assert "unset it" in caught.value.hint


def test_files_in_the_wrong_order_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    det, rec, keys = models_in(tmp_path / "m").split(os.pathsep)
    monkeypatch.setenv(rapidocr.MODELS_ENV, os.pathsep.join([keys, rec, det]))
    with pytest.raises(ConfigError, match=r"the detection model .*keys\.txt should end in \.onnx"):
        rapidocr.custom_models()


def test_pages_read_with_other_models_say_which(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(rapidocr.MODELS_ENV, models_in(tmp_path / "m", det=b"detection", rec=b"recognition"))
    models = rapidocr.custom_models()
    assert models is not None and models.det == str(tmp_path / "m" / "det.onnx")
    name = rapidocr.version()
    assert hashlib.sha256(b"detection").hexdigest()[:12] in name
    assert hashlib.sha256(b"recognition").hexdigest()[:12] in name
    assert rapidocr.pool(1).models == models, "a pool of its own, not the default engine's"


@needs_rapidocr
def test_ingest_stops_before_any_page_and_keeps_the_scan(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    archive_dir: Path,
    small_scan: Path,
) -> None:
    missing = os.pathsep.join(["/no/such/det.onnx", "/no/such/rec.onnx", "/no/such/keys.txt"])
    monkeypatch.setenv(rapidocr.MODELS_ENV, missing)
    run = cli(capsys, "--archive", archive_dir, "ingest", small_scan)
    assert run.code == ConfigError.exit_code, run.err
    assert f"{rapidocr.MODELS_ENV}: the detection model /no/such/det.onnx does not exist" in run.err
    assert small_scan.exists(), "never lose a note: the scan stays where it was"


@needs_rapidocr
def test_models_that_are_not_onnx_fail_to_start_plainly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(rapidocr.MODELS_ENV, models_in(tmp_path / "m"))
    models = rapidocr.custom_models()
    image, _ = render_note(seed=5, noise=0, sentences=1, height_in=2)
    out = io.BytesIO()
    image.convert("L").reduce(2).save(out, format="PNG")
    pool = rapidocr.Pool(1, models)
    try:
        with pytest.raises(OcrFailed, match=f"could not be started with the models in {rapidocr.MODELS_ENV}") as caught:
            pool.recognise(out.getvalue(), 60)
        assert not caught.value.timed_out
    finally:
        pool.close()


@needs_rapidocr
def test_status_names_the_models_and_warns_when_a_shipped_file_was_changed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    archive_dir: Path,
    small_scan: Path,
) -> None:
    monkeypatch.delenv(rapidocr.MODELS_ENV, raising=False)
    run = cli(capsys, "--archive", archive_dir, "status")
    assert run.code == 0, run.err
    assert (
        f"OCR models: rapidocr {importlib.metadata.version(rapidocr.DISTRIBUTION)} (models PP-OCRv5 mobile" in run.out
    )
    assert "changed or damaged" not in run.out

    copy = tmp_path / "ppocrv5"
    shutil.copytree(rapidocr.SHIPPED_DIR, copy)
    (copy / "rec.onnx").write_bytes((copy / "rec.onnx").read_bytes()[:-1])  # one byte short
    monkeypatch.setattr(rapidocr, "SHIPPED_DIR", copy)
    rapidocr.shipped_models.cache_clear()
    run = cli(capsys, "--archive", archive_dir, "status")
    assert run.code == 0, "status still reports: it is how the user finds out"
    assert "the OCR model file rec.onnx that comes with scanarchive has been changed or damaged" in run.out
    assert "Reinstall scanarchive" in run.out and "OCR models:" not in run.out
    monkeypatch.setenv(analyse.ENV_SWITCH, "off")  # read in this process, where the changed copy is in place
    ingest = cli(capsys, "--archive", archive_dir, "ingest", small_scan)
    assert ingest.code == ConfigError.exit_code and "rec.onnx" in ingest.err
    assert small_scan.exists(), "never lose a note: the scan stays where it was"
