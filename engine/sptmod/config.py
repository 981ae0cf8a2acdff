"""SPTMod's configuration (sizes of every block, the upstream config format) and the fixed
linear-interpolation kernel. Specification: shared/reference/sptmod/README.md section 2."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np



def whole_numbers(name, value):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"SptConfig.{name} must be a list of integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"SptConfig.{name} must be a list of integers, got {value!r}")
        out.append(int(v))
    return out


def whole_number(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"SptConfig.{name} must be an integer, got {v!r}")
    return int(v)


@dataclass
class SptConfig:
    """The inference-relevant hyperparameters of an SPTMod model (spec 2.1, 2.10).

    channels, kernels, dilations: C_j, k_j, d_j of the J ModBlocks' causal convolutions;
    pool: P, the frame length (pooling size; 64 in both papers' configurations);
    hidden: H, the LSTM size; n_params: number of controls; film_hidden: the hidden widths of each
    ModBlock's control MLP (used only when n_params > 0); input_channels: 1 (mono; the only
    supported value).
    """
    channels: list[int]
    kernels: list[int]
    dilations: list[int]
    pool: int = 64
    hidden: int = 31
    n_params: int = 0
    film_hidden: list[int] = field(default_factory=list)
    input_channels: int = 1

    _KEYS = ("channels", "kernels", "dilations", "pool", "hidden", "n_params", "film_hidden",
             "input_channels")

    @property
    def blocks(self) -> int:
        return len(self.channels)

    @classmethod
    def from_upstream(cls, cfg: dict) -> "SptConfig":
        """From the upstream constructor arguments (the golden files' `config` JSON, spec 2.10).
        Options this inference path does not implement (sidechain, max pooling, GRU, condnet,
        multi-channel input) raise ValueError; the SPN keys (spnet*) are ignored."""
        if not isinstance(cfg, dict):
            raise ValueError("the upstream configuration must be a JSON object")
        required = ("s_channels_list", "s_kernel_size_list", "s_dilation_list", "tfilm_block_size",
                    "rnn_hidden_size")
        missing = [k for k in required if k not in cfg]
        if missing:
            raise ValueError(f"upstream configuration: missing key(s) {', '.join(missing)}")
        checks = [("sidechain_channels", 0, "a sidechain is not supported"),
                  ("tfilm_pooling_type", "avg", "only average pooling ('avg') is supported"),
                  ("rnn_cell", "LSTM", "only the LSTM cell is supported"),
                  ("cond_size", None, "the condnet MLP (cond_size) is not supported")]
        for key, want, why in checks:
            if key in cfg and cfg[key] != want:
                raise ValueError(f"upstream configuration: {key} = {cfg[key]!r}: {why}")
        n_params = cfg.get("n_params", 0)
        film = cfg.get("film_hidden_neurons_list", None)
        if film is None:
            if n_params:
                raise ValueError("upstream configuration: n_params > 0 needs film_hidden_neurons_list")
            film = []
        c = cls(channels=whole_numbers("channels", cfg["s_channels_list"]),
                kernels=whole_numbers("kernels", cfg["s_kernel_size_list"]),
                dilations=whole_numbers("dilations", cfg["s_dilation_list"]),
                pool=cfg["tfilm_block_size"], hidden=cfg["rnn_hidden_size"], n_params=n_params,
                film_hidden=list(film), input_channels=cfg.get("input_channels", 1))
        c.validate()
        return c

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "kernels": list(self.kernels),
                "dilations": list(self.dilations), "pool": self.pool, "hidden": self.hidden,
                "n_params": self.n_params, "film_hidden": list(self.film_hidden),
                "input_channels": self.input_channels}

    @classmethod
    def from_dict(cls, d: dict) -> "SptConfig":
        if not isinstance(d, dict):
            raise ValueError("an SptConfig dictionary must be a dict")
        unknown = sorted(set(d) - set(cls._KEYS))
        if unknown:
            raise ValueError(f"SptConfig: unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("channels", "kernels", "dilations") if k not in d]
        if missing:
            raise ValueError(f"SptConfig: missing key(s) {', '.join(missing)}")
        c = cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()})
        c.validate()
        return c

    def validate(self) -> None:
        """Raise ValueError with a clear message if the configuration is unusable."""
        ch = whole_numbers("channels", self.channels)
        ks = whole_numbers("kernels", self.kernels)
        ds = whole_numbers("dilations", self.dilations)
        fh = whole_numbers("film_hidden", self.film_hidden)
        if not ch:
            raise ValueError("SptConfig.channels: at least one ModBlock is needed")
        if not (len(ch) == len(ks) == len(ds)):
            raise ValueError(f"SptConfig: channels, kernels and dilations must have the same length "
                             f"(one entry per ModBlock), got {len(ch)}, {len(ks)}, {len(ds)}")
        for name, vals in (("channels", ch), ("kernels", ks), ("dilations", ds),
                           ("film_hidden", fh)):
            bad = [v for v in vals if v < 1]
            if bad:
                raise ValueError(f"SptConfig.{name}: every entry must be >= 1, got {vals}")
        pool = whole_number("pool", self.pool)
        if pool < 1:
            raise ValueError(f"SptConfig.pool (the frame length P) must be >= 1, got {pool}")
        if whole_number("hidden", self.hidden) < 1:
            raise ValueError(f"SptConfig.hidden (the LSTM size H) must be >= 1, got {self.hidden}")
        if whole_number("n_params", self.n_params) < 0:
            raise ValueError(f"SptConfig.n_params must be >= 0, got {self.n_params}")
        if whole_number("input_channels", self.input_channels) != 1:
            raise ValueError(f"SptConfig.input_channels must be 1 (mono; multi-channel SPTMod is "
                             f"not implemented), got {self.input_channels}")

    def weight_shapes(self) -> dict[str, tuple]:
        """The state_dict entries the inference path needs, with their shapes (spec 2.11). Not
        listed (and ignored if given): the fixed interpolation kernels `s_tfilms.{j}.upsample.*`
        (regenerated; checked against the formula when present), the last block's unused
        `s_conv11s.{J-1}.*`, and the SPN `spnet.*`."""
        self.validate()
        J, H, cin = self.blocks, self.hidden, self.input_channels
        shapes: dict[str, tuple] = {}
        prev = cin
        for j in range(J):
            C, k = self.channels[j], self.kernels[j]
            shapes[f"s_convs.{j}.conv.weight"] = (C, prev, k)
            shapes[f"s_convs.{j}.conv.bias"] = (C,)
            shapes[f"s_acts.{j}.weight"] = (C,)
            if self.n_params > 0:
                width = self.n_params
                for li, h in enumerate(self.film_hidden):
                    shapes[f"s_tfilms.{j}.film_nn.{li}.0.weight"] = (h, width)
                    shapes[f"s_tfilms.{j}.film_nn.{li}.0.bias"] = (h,)
                    shapes[f"s_tfilms.{j}.film_nn.{li}.1.weight"] = (h,)
                    width = h
                last = len(self.film_hidden)
                shapes[f"s_tfilms.{j}.film_nn.{last}.weight"] = (2 * C, width)
                shapes[f"s_tfilms.{j}.film_nn.{last}.bias"] = (2 * C,)
            shapes[f"s_tfilms.{j}.rnn.rnn.weight_ih_l0"] = (4 * H, C)
            shapes[f"s_tfilms.{j}.rnn.rnn.weight_hh_l0"] = (4 * H, H)
            shapes[f"s_tfilms.{j}.rnn.rnn.bias_ih_l0"] = (4 * H,)
            shapes[f"s_tfilms.{j}.rnn.rnn.bias_hh_l0"] = (4 * H,)
            shapes[f"s_conv11f.{j}.weight"] = (2 * cin, H, 1)
            shapes[f"s_conv11f.{j}.bias"] = (2 * cin,)
            if j < J - 1:
                shapes[f"s_conv11s.{j}.weight"] = (2 * C, H, 1)
                shapes[f"s_conv11s.{j}.bias"] = (2 * C,)
            prev = C
        return shapes


def upsample_kernel(hidden: int, pool: int) -> np.ndarray:
    """The fixed linear-interpolation kernel upstream stores as `s_tfilms.{j}.upsample.convt.weight`
    (H, 1, 2P): w[k] = k/P for k < P, 1 - (k - P)/P for P <= k < 2P (spec 2.5 step 6)."""
    k = np.arange(2 * pool, dtype=np.float64)
    w = np.where(k < pool, k / pool, 1.0 - (k - pool) / pool)
    return np.broadcast_to(w, (hidden, 1, 2 * pool)).copy()
