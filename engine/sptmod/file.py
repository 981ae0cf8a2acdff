"""The Dualtone SPTMod model file: a versioned `.npz` (a zip of `.npy` members, no pickle).

Members:

* `dualtone_model` — a 0-d Unicode array holding one JSON object:
  `{"format": "dualtone-sptmod", "version": 1, "config": SptConfig.to_dict(), "sample_rate": Hz,
  "controls": [{"name", "min", "max", "default"}, ...] (one per control, n_params entries),
  "provenance": {...free-form...}, "weights_sha256": weights_sha256(weights)}`;
* `w/<state_dict name>` — float64 arrays, exactly the entries of `config.weight_shapes()` (the
  inference path's weights, upstream PyTorch names and shapes).

Two hashes:

* `weights_sha256(weights)` — canonical hash of the weights: names sorted; per name the UTF-8 name,
  "float64", the shape, then the little-endian float64 bytes in C order. Stored in the file and
  checked on load (a tampered weight is refused).
* `SptModel.sha256` — the *model identity*: SHA-256 of the canonical JSON of
  `{"config", "sample_rate", "weights_sha256"}`. It does not depend on the container bytes,
  on the provenance or on the control metadata, so an imported upstream file, its saved Dualtone
  file and any re-save of it have the same identity.
* `model_hash(path)` — SHA-256 of a file's bytes (what a preset records next to the model path).
  `save_model` writes a deterministic zip (fixed member order and timestamps, stored members), so
  saving the same model twice gives the same bytes.

`load_model` also imports the upstream layout (the reference golden files): a `config` JSON member
with the upstream constructor keys and `w/<name>` members holding the whole state_dict; the entries
the inference path does not use (the SPN, the fixed interpolation kernels, the last block's series
1x1) are ignored. An optional `p` member gives the control defaults (else 0), an optional
`sample_rate` member the rate (else 44100 Hz, the rate of the paper's models).

Every problem in a file is reported at once in a `ModelError` (never another exception).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic_file import atomic_write

FORMAT = "dualtone-sptmod"
VERSION = 1
HEADER_KEY = "dualtone_model"
WEIGHT_PREFIX = "w/"
HEADER_FIELDS = ("format", "version", "config", "sample_rate", "controls", "provenance",
                 "weights_sha256")
CONTROL_FIELDS = ("name", "min", "max", "default")

MAX_FILE_BYTES = 200 * 1024 * 1024        # on disk, and the sum of the members' unpacked sizes
MAX_PARAMETERS = 10_000_000               # the inference path's weights (80 MB of float64)
MAX_POOL = 4096                           # frame length P (64 in the papers)
MAX_HISTORY = 10_000_000                  # convolution history, sum of C_{j-1}*(k_j-1)*d_j
MAX_HEADER_CHARS = 1_000_000              # the JSON member
MAX_MEMBERS = 4096
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000.0, 1_000_000.0
UPSTREAM_SAMPLE_RATE = 44100.0
IMPORTED = "imported from upstream state_dict"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class ModelError(ValueError):
    """A model file (or model) that cannot be used; `.problems` lists every problem found."""

    def __init__(self, path, problems):
        self.path = str(path)
        self.problems = list(problems) or ["invalid model"]
        super().__init__(f"{self.path}: " + "; ".join(self.problems))


@dataclass
class SptModel:
    """An SPTMod network ready for SptModStream(model.config, model.weights)."""
    config: object                       # engine.sptmod.SptConfig
    weights: dict                        # state_dict name -> float64 array (inference path only)
    sample_rate: float
    controls: list = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The model identity: SHA-256 of canonical JSON {config, sample_rate, weights_sha256}."""
        return content_sha256(self.config, self.sample_rate, weights_sha256(self.weights))

    @property
    def control_names(self) -> list:
        return [c["name"] for c in self.controls]

    @property
    def control_defaults(self) -> np.ndarray:
        return np.array([c["default"] for c in self.controls], dtype=np.float64)


def default_controls(n: int, defaults=None) -> list:
    """Controls p0..p{n-1} in [0, 1] (widened to include a default outside it)."""
    out = []
    for i in range(n):
        d = 0.0 if defaults is None else float(defaults[i])
        out.append({"name": f"p{i}", "min": min(0.0, d), "max": max(1.0, d), "default": d})
    return out


def weights_sha256(weights: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(weights):
        a = np.ascontiguousarray(weights[name], dtype="<f8")
        h.update(f"{name}\0float64\0{','.join(str(n) for n in a.shape)}\0".encode("utf-8"))
        h.update(a.tobytes())
    return h.hexdigest()


def content_sha256(config, sample_rate: float, weights_hash: str) -> str:
    text = json.dumps({"config": config.to_dict(), "sample_rate": float(sample_rate),
                       "weights_sha256": weights_hash}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_hash(path) -> str:
    """SHA-256 of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- validation

def _is_finite_number(v) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:       # a JSON integer too large for a float
        return False


def check_controls(controls, n_params: int) -> list:
    """Problems of a control list (empty when it is valid)."""
    if not isinstance(controls, list):
        return [f"controls: expected a list of {n_params} controls, found {type(controls).__name__}"]
    problems = []
    if len(controls) != n_params:
        problems.append(f"controls: the config has {n_params} controls but the list has {len(controls)}")
    names = set()
    for i, c in enumerate(controls):
        if not isinstance(c, dict):
            problems.append(f"controls[{i}]: expected an object")
            continue
        missing = [k for k in CONTROL_FIELDS if k not in c]
        extra = sorted(k for k in c if k not in CONTROL_FIELDS)
        if missing:
            problems.append(f"controls[{i}]: missing {', '.join(missing)}")
        if extra:
            problems.append(f"controls[{i}]: unexpected {', '.join(map(str, extra))}")
        if missing:
            continue
        name = c["name"]
        if not (isinstance(name, str) and 0 < len(name) <= 64 and name.isprintable()
                and "," not in name and name.strip() == name):
            problems.append(f"controls[{i}]: the name must be 1 to 64 printable characters without commas")
        elif name in names:
            problems.append(f"controls[{i}]: the name '{name}' is used twice")
        else:
            names.add(name)
        lo, hi, d = c["min"], c["max"], c["default"]
        if not all(_is_finite_number(v) for v in (lo, hi, d)):
            problems.append(f"controls[{i}]: min, max and default must be finite numbers")
        elif not lo < hi:
            problems.append(f"controls[{i}]: min {lo:g} is not below max {hi:g}")
        elif not lo <= d <= hi:
            problems.append(f"controls[{i}]: default {d:g} is outside [{lo:g}, {hi:g}]")
    return problems


def _check_sample_rate(sr) -> list:
    if not _is_finite_number(sr):
        return [f"sample_rate: {str(sr)[:40]} is not a finite number"]
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        return [f"sample_rate: {sr:g} Hz is outside {MIN_SAMPLE_RATE:g} to {MAX_SAMPLE_RATE:g} Hz"]
    return []


def _config_shapes(config) -> tuple[dict | None, list]:
    """(weight_shapes, problems) of a config: validate() and the parameter cap."""
    try:
        config.validate()
    except Exception as e:          # the config comes from a file: any failure is its fault
        return None, [f"config: {e}"]
    try:
        shapes = {str(k): tuple(int(n) for n in v) for k, v in config.weight_shapes().items()}
    except Exception as e:
        return None, [f"config: {e}"]
    total = sum(math.prod(s) for s in shapes.values())
    if total > MAX_PARAMETERS:
        return None, [f"config: it declares {total:,} parameters, above the cap of {MAX_PARAMETERS:,}"]
    if config.pool > MAX_POOL:
        return None, [f"config: pool {config.pool:,} is above the cap of {MAX_POOL:,} samples"]
    inputs = [config.input_channels] + list(config.channels[:-1])
    history = sum(c * (k - 1) * d for c, k, d in zip(inputs, config.kernels, config.dilations))
    if history > MAX_HISTORY:
        return None, [f"config: the convolutions keep {history:,} samples of history, above the "
                      f"cap of {MAX_HISTORY:,}"]
    return shapes, []


def check_weights(weights: dict, shapes: dict, dtype_strict: bool = True) -> list:
    """Problems of a weight dict against the config's shapes (missing, extra, shape, non-finite)."""
    problems = []
    missing = [n for n in shapes if n not in weights]
    if missing:
        problems.append("missing weights: " + ", ".join(missing[:8])
                        + (f" (and {len(missing) - 8} more)" if len(missing) > 8 else ""))
    extra = sorted(n for n in weights if n not in shapes)
    if extra:
        problems.append("unexpected weights: " + ", ".join(extra[:8])
                        + (f" (and {len(extra) - 8} more)" if len(extra) > 8 else ""))
    for name, shape in shapes.items():
        if name not in weights:
            continue
        a = weights[name]
        if not isinstance(a, np.ndarray):
            problems.append(f"weight {name}: not an array")
            continue
        if dtype_strict and a.dtype != np.float64:
            problems.append(f"weight {name}: dtype {a.dtype}, expected float64")
            continue
        if a.dtype.kind != "f":
            problems.append(f"weight {name}: dtype {a.dtype} is not a float type")
            continue
        if a.shape != shape:
            problems.append(f"weight {name}: shape {a.shape}, expected {shape}")
            continue
        bad = a.size - int(np.count_nonzero(np.isfinite(a)))
        if bad:
            problems.append(f"weight {name}: {bad} non-finite value{'s' if bad > 1 else ''}")
    return problems


def validate_model(model: SptModel) -> list:
    """Every problem of an in-memory model (empty when it can be saved and run)."""
    shapes, problems = _config_shapes(model.config)
    if shapes is not None:
        problems += check_weights(model.weights, shapes)
    n = getattr(model.config, "n_params", None)
    problems += check_controls(model.controls, n if isinstance(n, int) else -1)
    problems += _check_sample_rate(model.sample_rate)
    if not isinstance(model.provenance, dict):
        problems.append("provenance: expected an object")
    else:
        try:
            json.dumps(model.provenance, allow_nan=False)
        except (TypeError, ValueError) as e:
            problems.append(f"provenance: not plain JSON ({e})")
    return problems


# --------------------------------------------------------------------------- reading

def _read_members(path: Path) -> tuple[dict, list]:
    """The file's arrays by member name (without `.npy`); hostile containers give problems."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {}, ["no such file"]
    except OSError as e:
        return {}, [f"cannot read: {e.strerror or e}"]
    if not path.is_file():
        return {}, ["not a file"]
    if size > MAX_FILE_BYTES:
        return {}, [f"the file is {size:,} bytes, above the cap of {MAX_FILE_BYTES:,}"]
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return {}, ["not a model file (not an .npz/zip archive)"]
    except OSError as e:
        return {}, [f"cannot read: {e.strerror or e}"]
    except Exception as e:      # a damaged central directory (names that do not decode, ...)
        return {}, [f"damaged archive ({type(e).__name__}: {' '.join(str(e).split())[:200]})"]
    arrays, problems = {}, []
    try:
        with zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                return {}, [f"the archive has {len(infos)} members, above the cap of {MAX_MEMBERS}"]
            unpacked = sum(i.file_size for i in infos)
            if unpacked > MAX_FILE_BYTES:
                return {}, [f"the archive unpacks to {unpacked:,} bytes, above the cap of {MAX_FILE_BYTES:,}"]
            for info in infos:
                if info.is_dir():
                    continue
                if not info.filename.endswith(".npy"):
                    problems.append(f"member {ascii(info.filename)[:80]} is not an .npy array")
                    continue
                key = info.filename[:-4]
                if key in arrays:
                    problems.append(f"member {ascii(info.filename)[:80]} appears twice")
                    continue
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        problems.append(f"{key}: .npy format version {version} is not supported")
                        continue
                if dtype.hasobject:
                    problems.append(f"{key}: holds a pickled object array (refused: models never "
                                    "contain Python objects)")
                    continue
                count = math.prod(shape)
                if count * max(dtype.itemsize, 1) > MAX_FILE_BYTES:
                    problems.append(f"{key}: declares {count:,} elements, above the size cap")
                    continue
                with zf.open(info) as f:
                    arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    except Exception as e:    # zipfile, zlib and numpy's header parser (ast, tokenize) on hostile bytes
        return {}, [f"damaged archive ({type(e).__name__}: {' '.join(str(e).split())[:200]})"]
    return arrays, problems


def _json_member(arrays: dict, key: str) -> tuple[object, list]:
    a = arrays[key]
    if a.shape != () or a.dtype.kind != "U":
        return None, [f"{key}: expected a JSON string, found a {a.dtype} array of shape {a.shape}"]
    text = str(a)
    if len(text) > MAX_HEADER_CHARS:
        return None, [f"{key}: the JSON is {len(text):,} characters, above the cap of {MAX_HEADER_CHARS:,}"]
    try:
        return json.loads(text), []
    except (ValueError, RecursionError) as e:
        return None, [f"{key}: not valid JSON ({e})"]


def _weights_of(arrays: dict) -> dict:
    return {k[len(WEIGHT_PREFIX):]: v for k, v in arrays.items() if k.startswith(WEIGHT_PREFIX)}


def _config_from(kind: str, d) -> tuple[object | None, list]:
    from engine.sptmod.config import SptConfig
    if not isinstance(d, dict):
        return None, ["config: expected a JSON object"]
    try:
        return (SptConfig.from_dict(d) if kind == "dualtone" else SptConfig.from_upstream(d)), []
    except Exception as e:          # hostile config values: any failure is the file's fault
        return None, [f"config: {e}"]


def _load_dualtone(arrays: dict) -> tuple[SptModel | None, list]:
    header, problems = _json_member(arrays, HEADER_KEY)
    extra = sorted(k for k in arrays if k != HEADER_KEY and not k.startswith(WEIGHT_PREFIX))
    if extra:
        problems.append("unexpected members: " + ", ".join(extra))
    if header is None:
        return None, problems
    if not isinstance(header, dict):
        return None, problems + [f"{HEADER_KEY}: expected a JSON object"]
    missing = [k for k in HEADER_FIELDS if k not in header]
    if missing:
        problems.append(f"{HEADER_KEY}: missing {', '.join(missing)}")
    unknown = sorted(k for k in header if k not in HEADER_FIELDS)
    if unknown:
        problems.append(f"{HEADER_KEY}: unexpected {', '.join(unknown)}")
    if header.get("format") != FORMAT:
        problems.append(f"format {header.get('format')!r} is not {FORMAT!r}")
    v = header.get("version")
    if not (isinstance(v, int) and not isinstance(v, bool) and v == VERSION):
        problems.append(f"version {v!r} is not supported (this build reads version {VERSION})")
    if problems:
        return None, problems
    config, problems = _config_from("dualtone", header["config"])
    weights = _weights_of(arrays)
    if config is not None:
        shapes, p = _config_shapes(config)
        problems += p
        if shapes is not None:
            problems += check_weights(weights, shapes)
        problems += check_controls(header["controls"], config.n_params)
    problems += _check_sample_rate(header["sample_rate"])
    if not isinstance(header["provenance"], dict):
        problems.append("provenance: expected an object")
    stored = header["weights_sha256"]
    if not (isinstance(stored, str) and re.fullmatch(r"[0-9a-f]{64}", stored)):
        problems.append("weights_sha256: expected 64 hex digits")
    elif not problems and weights_sha256(weights) != stored:
        problems.append("the weights do not match weights_sha256 (the file was altered or damaged)")
    if problems:
        return None, problems
    controls = [{"name": c["name"], "min": float(c["min"]), "max": float(c["max"]),
                 "default": float(c["default"])} for c in header["controls"]]
    weights = {k: np.ascontiguousarray(v) for k, v in weights.items()}
    return SptModel(config, weights, float(header["sample_rate"]), controls,
                    dict(header["provenance"])), []


def _upstream_ignored(name: str, config) -> bool:
    """State_dict entries upstream stores that the inference path does not use."""
    last = len(config.channels) - 1
    return (name.startswith("spnet.") or name.endswith(".upsample.convt.weight")
            or name in (f"s_conv11s.{last}.weight", f"s_conv11s.{last}.bias"))


def _load_upstream(arrays: dict, path: Path) -> tuple[SptModel | None, list]:
    d, problems = _json_member(arrays, "config")
    if problems:
        return None, problems
    config, problems = _config_from("upstream", d)
    if config is None:
        return None, problems
    shapes, problems = _config_shapes(config)
    if shapes is None:
        return None, problems
    all_weights = _weights_of(arrays)
    weights = {k: v for k, v in all_weights.items() if k in shapes}
    ignored = sorted(k for k in all_weights if k not in shapes and _upstream_ignored(k, config))
    unknown = sorted(k for k in all_weights if k not in shapes and not _upstream_ignored(k, config))
    if unknown:
        problems.append("weights the inference path does not know: " + ", ".join(unknown[:8])
                        + (f" (and {len(unknown) - 8} more)" if len(unknown) > 8 else ""))
    problems += check_weights(weights, shapes, dtype_strict=False)
    from engine.sptmod.config import upsample_kernel
    kernel = upsample_kernel(config.hidden, config.pool)
    for j in range(len(config.channels)):           # fixed, not loaded: must equal the formula
        k = all_weights.get(f"s_tfilms.{j}.upsample.convt.weight")
        if k is not None and (k.shape != kernel.shape or not np.array_equal(k, kernel)):
            problems.append(f"weight s_tfilms.{j}.upsample.convt.weight is not the linear "
                            "interpolation kernel")
    n = config.n_params
    defaults = None
    if "p" in arrays:
        p = arrays["p"]
        if p.dtype.kind not in "fiu" or p.shape != (n,):
            problems.append(f"p: expected {n} control values, found a {p.dtype} array of shape {p.shape}")
        elif not np.all(np.isfinite(p)):
            problems.append("p: holds non-finite values")
        else:
            defaults = [float(v) for v in p]
    sample_rate = UPSTREAM_SAMPLE_RATE
    if "sample_rate" in arrays:
        sr = arrays["sample_rate"]
        if sr.shape != () or sr.dtype.kind not in "fiu":
            problems.append("sample_rate: expected a number")
        else:
            sample_rate = float(sr)
            problems += _check_sample_rate(sample_rate)
    if problems:
        return None, problems
    weights = {k: np.array(v, dtype=np.float64, order="C") for k, v in weights.items()}
    provenance = {"source": IMPORTED, "file": path.name, "file_sha256": model_hash(path),
                  "upstream_config": d, "ignored_entries": len(ignored),
                  "sample_rate": "from the file" if "sample_rate" in arrays
                  else f"assumed {UPSTREAM_SAMPLE_RATE:g} Hz (not stored upstream)"}
    return SptModel(config, weights, sample_rate, default_controls(n, defaults), provenance), []


def load_model(path) -> SptModel:
    """A Dualtone model file, or an upstream-layout npz (imported). Raises ModelError."""
    path = Path(path)
    arrays, problems = _read_members(path)
    if problems:
        raise ModelError(path, problems)
    if HEADER_KEY in arrays:
        model, problems = _load_dualtone(arrays)
    elif "config" in arrays and any(k.startswith(WEIGHT_PREFIX) for k in arrays):
        model, problems = _load_upstream(arrays, path)
    else:
        model, problems = None, [f"not a model file: neither a Dualtone model (no '{HEADER_KEY}') "
                                 "nor an upstream state_dict ('config' and 'w/...' arrays)"]
    if problems:
        raise ModelError(path, problems)
    return model


# --------------------------------------------------------------------------- writing

def _npy_bytes(a: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def _write_zip(f, members: list):
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in members:
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, _npy_bytes(a))


def save_model(model: SptModel, path, overwrite: bool = False) -> Path:
    """Write `model` as a Dualtone model file, atomically (a temporary file in the same folder,
    fsync, then rename). Refuses an invalid model (ModelError) and an existing file unless
    overwrite=True (FileExistsError). The bytes depend only on the model."""
    path = Path(path)
    problems = validate_model(model)
    if problems:
        raise ModelError(path, problems)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    weights = {k: np.ascontiguousarray(model.weights[k], dtype="<f8") for k in sorted(model.weights)}
    header = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
              "sample_rate": float(model.sample_rate),
              "controls": [{k: (c[k] if k == "name" else float(c[k])) for k in CONTROL_FIELDS}
                           for c in model.controls],
              "provenance": model.provenance, "weights_sha256": weights_sha256(weights)}
    text = json.dumps(header, sort_keys=True, allow_nan=False)
    members = [(HEADER_KEY, np.array(text))] + [(WEIGHT_PREFIX + k, a) for k, a in weights.items()]
    try:
        return atomic_write(path, lambda f: _write_zip(f, members), overwrite)
    except FileExistsError:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)") from None
