"""Run configuration: dataclasses read from TOML presets, with `section.key=value` overrides.

Presets live in `dsae_pyro/presets/*.toml`; a user can copy one, edit it and pass its path to
`--preset`. Every field can also be overridden on the command line with `--set section.key=value`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESET_DIR = Path(__file__).parent / "presets"
LIKELIHOODS = ("gaussian", "gaussian_learned", "laplace", "bernoulli", "l2", "palette_mixture")
COLOUR_TABLES = ("f", "global")  # who sets the colour-mix decoder's table (nets.ColourMixDecoder)
ELBOS = ("trace", "meanfield")
# model.* fields that make a prior a mixture when > 1 -> the density they make one
MIXTURE_PRIORS = {"prior_components": "p(z_t | z_<t)", "f_prior_components": "p(f)"}
OBJECTIVES_DSAE = ("elbo", "contrastive")
NCE_F_VIEWS = ("shuffle", "shuffle_mirror", "shuffle_tiles")
SWAP_F = ("prior", "batch")
F_ENCODERS = ("frames", "palette")
Z_ENCODERS = ("frames", "silhouette")
F_SOURCES = ("self", "sibling")
Z_SOURCES = ("self", "recolour")
REFIT_DECODER_AT = ("draws", "means")  # what of q the decoder's refit reads (prior_fit.py)
# likelihoods that read the decoder's one output and hold no parameters of their own, so the
# decoder's refit may swap one for another (prior_fit.py)
REFIT_LIKELIHOODS = ("gaussian", "laplace", "bernoulli", "l2")
# those of them that read model.x_scale, and what it is to each (prior_fit.py, seeds_table.py)
SCALE_NAMES = {"gaussian": "std", "laplace": "b"}
DATASETS = ("synthetic", "sprites", "digits", "npz")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A preset or an override that does not fit; the message says which and how to fix it."""


@dataclass
class ModelConfig:
    f_dim: int = 256  # static latent f
    z_dim: int = 32  # per-frame latent z_t
    hidden: int = 512  # prior LSTM and the guides' recurrent networks
    conv_channels: list[int] = field(default_factory=lambda: [256, 256, 256, 256])
    conv_strides: list[int] = field(default_factory=lambda: [1, 2, 2, 2])
    conv_kernel: int = 5
    conv_features: list[int] = field(default_factory=lambda: [4096, 2048])
    # the conv decoder's affine layers before its transposed convs; empty: the encoder's mirror
    # (reversed conv_features). Li & Mandt's decoder has one, of 4096 (the paper preset)
    decoder_features: list[int] = field(default_factory=list)
    # the conv decoder's widths, from its grid up to its last hidden layer (one per transposed
    # conv); empty: the encoder's mirror (reversed conv_channels). Wider late layers give the
    # high-resolution layers that draw skin and clothes more room
    decoder_widths: list[int] = field(default_factory=list)
    # gaussian | gaussian_learned | laplace (an absolute error: the decoder draws the median of
    # what it may be given, not the mean, so two close colours are not averaged) | bernoulli |
    # l2 (Das & Dandi) | palette_mixture: each pixel a mixture of Gaussians around the
    # colour-mix decoder's K colours (needs decoder_colours)
    likelihood: str = "gaussian"
    # pixel std of the fixed-scale Gaussian (initial value if learned; each colour's under
    # palette_mixture; the Laplace's scale b, whose std is b * sqrt(2))
    x_scale: float = 0.1
    # the Gaussian's and the Laplace's mean is (1 + 2 m) sigmoid(out) - m for this margin m, so
    # that pixels near 0 and 1 (the palest skin's red is 253) are reached at moderate logits,
    # where the sigmoid still passes a gradient; the picture is clipped to [0, 1]. 0: the sigmoid
    mean_margin: float = 0.0
    guide: str = "factorized"  # factorized | full | causal
    # what q(f) reads: "frames", a bi-LSTM over the frame encoder's features (Li & Mandt);
    # "palette", the soft presence of 512 reference colours max-pooled over the clip's pixels
    # (nets.PaletteEncoder): which colours a clip holds but not where, so f cannot hold a pose or
    # the direction a sprite faces
    f_encoder: str = "frames"
    # what q(z_1:T) reads: "frames", the clip itself; "silhouette", each frame's foreground (any
    # pixel brighter than the black canvas) in every channel: where the sprite is, not what it
    # wears, so z_1:T cannot hold the colours or the cut of the clothes. In training and at test
    # (the full guide's q(z_1:T | x, f) still reads f)
    z_encoder: str = "frames"
    prior: str = "lstm"  # lstm (Li & Mandt) | improved (Yingzhen Li)
    # 1: p(z_t | z_<t) is one diagonal Gaussian and p(f) = N(0, I). K > 1: a mixture of K, whose
    # samples can land on the separate clusters of the posteriors instead of between them
    # (priors.py; `dsae refit-prior` fits them after training). No closed-form KL, so
    # train.elbo must be "trace"
    prior_components: int = 1
    f_prior_components: int = 1
    decoder: str = "conv"  # conv: mirror of the encoder | improved: Yingzhen Li's MLP + deconvs
    decoder_hidden: int = 512  # improved decoder only
    decoder_channels: int = 256  # improved decoder only
    # 0: the decoder draws the pixels. K > 0: it draws per-pixel weights over a table of K colours
    # (nets.ColourMixDecoder; whose table: colour_table). f's own table, on real Sprites (nolabel
    # preset, K = 16, 2 epochs), made both tests far worse: z_1:T picks which slot a region takes
    # (experiments/README.md)
    decoder_colours: int = 0
    # whose table the K colours are: "f" (each clip's, read from f) or "global" (one learned
    # palette for every clip, started at the training clips' K commonest colours, so slot k means
    # the same colour in every clip and f from p(f) mixes the dataset's colours, never new ones;
    # K = 32, 2 epochs: motion 99.6%, IS 8.74, skin no better, hair worse; experiments/README.md)
    colour_table: str = "f"
    # true: f also modulates every hidden layer of the decoder (nets.FiLM), a direct path from the
    # appearance to the high-resolution layers that draw skin and clothes
    decoder_film: bool = False
    # W > 0: a head of W channels at the frames' full resolution redraws the decoder's output
    # from each pixel's drawn neighbours and f (nets.Refiner): the last transposed conv draws
    # from a 32x32 grid and never sees two adjacent output pixels. `dsae refit-prior
    # --decoder-refine W` gives a trained run one (seed 1 of the nolabel preset, W = 16, 3 passes
    # at --decoder-lr 3e-4: body on reconstructions 96.4 -> 98.4%; a refit step costs 3.4x the
    # one without it on a CPU, BENCHMARKS.md). 0: none
    decoder_refine: int = 0
    frames: int = 8
    image_channels: int = 3
    image_size: int = 64

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_channels, self.image_size, self.image_size)

    @property
    def conv_out_shape(self) -> tuple[int, int, int]:
        side = self.image_size // math.prod(self.conv_strides)
        return (self.conv_channels[-1], side, side)


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 25
    lr: float = 2e-4
    # the last lr_decay_epochs epochs of train.epochs run at lr * lr_decay: after 8 epochs of the
    # nolabel preset, 2 at a tenth of the rate lifted the judges' skin and trousers ceilings
    # 82 -> 90% and 95 -> 98% (experiments/README.md, "The curve with the faster step")
    lr_decay_epochs: int = 0
    lr_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    elbo: str = "trace"  # trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL)
    kl_weight: float = 1.0  # scales log p(f, z) - log q(f, z) through poutine.scale
    kl_warmup: int = 0  # steps over which that weight rises linearly from ~0 (0: none)
    # which clip q(f) reads in training: self (the clip it reconstructs; unsupervised, Li & Mandt)
    # or sibling (another clip of the same character: weak supervision by identity; any q(f)
    # still gives a lower bound, and evaluation always reads the clip itself)
    f_source: str = "self"
    # which view q(z_1:T) reads in training: self, or recolour (colours scrambled per clip, so z
    # cannot carry skin and clothes colours: unsupervised)
    z_source: str = "self"
    num_particles: int = 1
    # elbo: Trace_ELBO (or meanfield); contrastive: the ELBO plus InfoNCE bounds on I(x; f) and
    # I(x; z_1:T) and a penalty on I(f; z_1:T), no labels (objectives.ContrastiveLoss)
    objective: str = "elbo"
    # the contrastive terms' weights, per clip like the ELBO (about 24,000 nats a clip at the cpu
    # preset): 100 / 100 / 1 was the best of the first runs (experiments/README.md)
    nce_f_weight: float = 100.0  # contrastive: weight of InfoNCE(f; f of the shuffled clip)
    nce_z_weight: float = 100.0  # contrastive: weight of InfoNCE(z; z of the recoloured clip)
    # contrastive: f's positive view, the clip with its frames shuffled, shuffled and mirrored
    # left-right (then f cannot tell a sprite walking left from one walking right), or shuffled with
    # each frame's 8x8 tiles in a random order (then f cannot tell front from side either)
    nce_f_view: str = "shuffle"
    mi_weight: float = 1.0  # contrastive: weight of the I(f; z_1:T) penalty
    swap_weight: float = 0.0  # contrastive: weight of InfoNCE(z; z read back after a new f)
    # contrastive: the swap term's new f, drawn from p(f) or another clip's (the batch rolled by one)
    swap_f: str = "prior"
    swap_recolour: bool = False  # contrastive: the guide reads z back from the frames recoloured
    temperature: float = 0.5  # contrastive: of the cosine critic
    # after the last epoch, refit p(z_1:T) to q of the training clips as a mixture of this many
    # Gaussians per step, as `dsae refit-prior` does (0: none; prior_fit.py); on real Sprites it
    # lifts the attributes of clips drawn with a new z_1:T to near the decoder's ceiling
    # (experiments/README.md, "Refitting the priors after training")
    refit_z_components: int = 0
    refit_epochs: int = 60  # passes of that refit over the training clips' posteriors
    # then refit the decoder to q of the training clips for this many passes at Adam's rate
    # refit_decoder_lr, as `dsae refit-prior --decoder-epochs` does (0: none); on real Sprites it
    # draws the skin tones better than as many minutes of training on after a short run, and finds
    # nothing to gain after the nolabel preset's 32 epochs (experiments/README.md, "Refitting the
    # decoder") unless the read-back term below is on
    refit_decoder_epochs: int = 0
    refit_decoder_lr: float = 1e-4
    refit_decoder_at: str = "draws"  # draws of q (the ELBO's term) | means (Ghosh et al. 2020)
    # weight of the read-back term in that refit (0: none): frames drawn with a clip's z_1:T and
    # an f from p(f) must give that z_1:T back to q, so the motion survives a new f
    # (prior_fit.readback_nats; experiments/README.md, "The motion under a new f")
    refit_decoder_readback: float = 0.0
    seed: int = 0
    eval_clips: int = 0  # test clips scored each epoch; 0 means the whole test split
    tensorboard: bool = False  # live curves in RUN/tensorboard (needs the tensorboard package)
    keep: int = 0  # earlier epochs' checkpoints kept beside the latest (checkpoint_e<N>.pt)
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class DataConfig:
    name: str = "synthetic"  # synthetic | sprites | digits | npz
    # sprites: folder of LPC sheets (empty: download); digits: a folder holding torchvision's MNIST
    # (empty: the built-in font digits); npz: the file
    path: str = ""
    seed: int = 423  # synthetic and digits: the drawing and split


class Sectioned:
    """A config made of dataclass sections ([model], [train], [data]) read from and written to
    TOML, with `section.key=value` overrides; subclasses add `validate` and their presets' folder."""

    KIND: ClassVar[str]
    PRESET_DIR: ClassVar[Path]
    preset: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, preset: str = "custom"):
        cfg = cls(preset=d.get("preset", preset))
        for section, values in d.items():
            if section == "preset":
                continue
            if not isinstance(values, dict):
                if section in _sections(cfg):
                    raise ConfigError(f"{section} must be a table ([{section}] with key = value "
                                      f"lines), got {section} = {values!r}")
                raise ConfigError(f"unknown top-level key {section!r}; "
                                  f"expected sections {sorted(_sections(cfg))}")
            for key, value in values.items():
                _assign(cfg, section, key, value)
        cfg.validate()
        return cfg

    def override(self, assignments: list[str]):
        """Apply `section.key=value` strings (values in TOML syntax; bare words are strings)."""
        for item in assignments:
            if "=" not in item or "." not in item.split("=", 1)[0]:
                raise ConfigError(f"override {item!r} is not of the form section.key=value, "
                                  "e.g. train.lr=1e-3")
            path, raw = item.split("=", 1)
            section, key = path.strip().split(".", 1)
            _assign(self, section, key, _parse_value(raw.strip()))
        self.validate()
        return self

    def validate(self) -> None:
        raise NotImplementedError

    def check(self, choices: dict[str, tuple], positive: tuple[str, ...] = (),
              at_least_one: tuple[str, ...] = (), at_least_zero: tuple[str, ...] = (),
              unit: tuple[str, ...] = ()) -> None:
        """Raise ConfigError naming the first field ("section.key") that breaks a rule: one of
        `choices`, finite and > 0 (`positive`), >= 1 (`at_least_one`; for lists, every entry and
        at least one), finite and >= 0 (`at_least_zero`), in [0, 1) (`unit`)."""
        def value(path):
            section, key = path.split(".")
            return getattr(getattr(self, section), key)

        for path, allowed in choices.items():
            if value(path) not in allowed:
                raise ConfigError(f"{path} = {value(path)!r} is not one of {list(allowed)}")
        for path in positive:
            if not 0 < value(path) < math.inf:
                why = " (poutine.scale rejects 0)" if path in ("train.kl_weight", "train.beta") else ""
                raise ConfigError(f"{path} must be a finite number > 0, got {value(path)}{why}")
        for path in at_least_one:
            v = value(path)
            if (min(v, default=0) if isinstance(v, list) else v) < 1:
                what = "list at least one value, each >= 1" if isinstance(v, list) else "be >= 1"
                raise ConfigError(f"{path} must {what}, got {v}")
        for path in at_least_zero:
            if not 0 <= value(path) < math.inf:
                raise ConfigError(f"{path} must be a finite number >= 0, got {value(path)}")
        for path in unit:
            if not 0 <= value(path) < 1:
                raise ConfigError(f"{path} must lie in [0, 1), got {value(path)}")

    def to_toml(self) -> str:
        lines = [f'preset = "{self.preset}"']
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                lines.append(f"\n[{section}]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        return "\n".join(lines) + "\n"


@dataclass
class Config(Sectioned):
    """The DSAE's configuration."""

    KIND: ClassVar[str] = "dsae"  # the kind of checkpoint it describes
    PRESET_DIR: ClassVar[Path] = PRESET_DIR
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preset: str = "custom"

    @staticmethod
    def model_choices() -> dict[str, tuple]:
        """The model.* fields that take one of a fixed set of names, with those names."""
        # the names come from the registries that build the networks (imported here: they import
        # this module)
        from .guides import GUIDES
        from .nets import DECODERS
        from .priors import PRIORS

        return {"guide": tuple(GUIDES), "prior": tuple(PRIORS), "decoder": tuple(DECODERS),
                "likelihood": LIKELIHOODS, "f_encoder": F_ENCODERS, "z_encoder": Z_ENCODERS,
                "colour_table": COLOUR_TABLES}

    def validate(self) -> None:
        m = self.model
        self.check(choices={**{f"model.{k}": v for k, v in self.model_choices().items()},
                            "train.elbo": ELBOS,
                            "train.objective": OBJECTIVES_DSAE, "train.nce_f_view": NCE_F_VIEWS,
                            "train.swap_f": SWAP_F,
                            "train.f_source": F_SOURCES, "train.z_source": Z_SOURCES,
                            "train.refit_decoder_at": REFIT_DECODER_AT,
                            "data.name": DATASETS, "train.device": DEVICES},
                   positive=("train.kl_weight", "model.x_scale", "train.lr", "train.temperature",
                             "train.lr_decay", "train.refit_decoder_lr"),
                   at_least_one=("train.epochs", "train.batch_size", "train.num_particles",
                                 "model.f_dim", "model.z_dim", "model.hidden", "model.frames",
                                 "model.conv_kernel", "model.conv_channels", "model.conv_strides",
                                 "model.conv_features", "model.decoder_hidden",
                                 "model.decoder_channels", "model.image_channels",
                                 "model.image_size", "model.prior_components",
                                 "model.f_prior_components", "train.refit_epochs"),
                   at_least_zero=("train.kl_warmup", "train.lr_decay_epochs", "train.eval_clips",
                                  "train.keep", "train.nce_f_weight", "train.refit_z_components",
                                  "train.refit_decoder_epochs", "train.refit_decoder_readback",
                                  "train.nce_z_weight", "train.mi_weight", "train.swap_weight",
                                  "model.decoder_colours", "model.decoder_refine"),
                   unit=("train.beta1", "train.beta2", "model.mean_margin"))
        for key, site in MIXTURE_PRIORS.items():
            if getattr(m, key) > 1 and self.train.elbo == "meanfield":
                raise ConfigError(f"model.{key} = {getattr(m, key)} makes {site} a mixture, which "
                                  "has no closed-form KL for train.elbo = 'meanfield'; use "
                                  f"train.elbo = 'trace' or model.{key} = 1")
        if self.train.refit_z_components > 1 and self.train.elbo == "meanfield":
            raise ConfigError(f"train.refit_z_components = {self.train.refit_z_components} "
                              "refits p(z_t | z_<t) as a mixture, which has no closed-form KL "
                              "for train.elbo = 'meanfield'; use train.elbo = 'trace' or "
                              "train.refit_z_components = 0")
        for key in ("decoder_features", "decoder_widths"):
            if getattr(m, key) and min(getattr(m, key)) < 1:
                raise ConfigError(f"model.{key} must be empty or >= 1 in every entry, got "
                                  f"{getattr(m, key)}")
        if m.decoder_widths and m.decoder != "conv":
            raise ConfigError(f"model.decoder_widths sets the conv decoder's widths, but "
                              f"model.decoder = {m.decoder!r}; its width is "
                              f"model.decoder_channels. Leave model.decoder_widths empty")
        if m.decoder_widths and len(m.decoder_widths) != len(m.conv_channels):
            raise ConfigError(f"model.decoder_widths needs one width per transposed conv "
                              f"({len(m.conv_channels)}, as model.conv_channels), got "
                              f"{m.decoder_widths}; or leave it empty for the encoder's mirror")
        uses_colours = {"colour_table": m.colour_table != "f",  # whose table the colours are
                        "likelihood": m.likelihood == "palette_mixture"}  # a mixture over them
        for key, uses in uses_colours.items():
            if uses and not m.decoder_colours:
                raise ConfigError(f"model.{key} = {getattr(m, key)!r} works on the colour-mix "
                                  "decoder's colours, which model.decoder_colours = 0 turns off; "
                                  "set model.decoder_colours (e.g. 32) as well")
        if len(m.conv_channels) != len(m.conv_strides):
            raise ConfigError("model.conv_channels and model.conv_strides need the same length, "
                              f"got {m.conv_channels} and {m.conv_strides}")
        if m.image_size % math.prod(m.conv_strides):
            raise ConfigError(f"image size {m.image_size} is not divisible by the product of "
                              f"model.conv_strides {m.conv_strides}")


def _sections(cfg: Sectioned) -> dict:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if dataclasses.is_dataclass(getattr(cfg, f.name))}


def _assign(cfg: Sectioned, section: str, key: str, value) -> None:
    sections = _sections(cfg)
    if section not in sections:
        raise ConfigError(f"unknown section {section!r}; expected one of {sorted(sections)}")
    obj = sections[section]
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if key not in fields:
        raise ConfigError(f"unknown option {section}.{key}; options of [{section}]: "
                          f"{', '.join(sorted(fields))}")
    current = getattr(obj, key)
    if isinstance(current, bool) != isinstance(value, bool) or (
            isinstance(current, list) != isinstance(value, list)) or (
            isinstance(current, str) != isinstance(value, str)):
        raise ConfigError(f"{section}.{key} expects a value like {current!r}, got {value!r}")
    if isinstance(current, float) and isinstance(value, int):
        value = float(value)
    if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, float):
        raise ConfigError(f"{section}.{key} expects an integer, got {value!r}")
    setattr(obj, key, value)


def _parse_value(raw: str):
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare word such as full or cuda


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def available_presets(cls: type[Sectioned] | None = None) -> list[str]:
    """The names of the presets of `cls` (default: the DSAE's)."""
    return sorted(p.stem for p in (cls or Config).PRESET_DIR.glob("*.toml"))


def load_preset(name_or_path: str, cls: type[Sectioned] = Config) -> Sectioned:
    """A preset of `cls` by name (`cpu`, `paper`, ...) or the path of a TOML file."""
    folder = cls.PRESET_DIR
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name_or_path!r}: use one of "
                          f"{available_presets(cls)} or the path of a .toml file")
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"preset file {path} is not valid TOML (UTF-8 text): {e}") from e
    return cls.from_dict(data, preset=path.stem)
