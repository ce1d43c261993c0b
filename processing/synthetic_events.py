"""Sound generators for the synthetic captioning corpus (`processing/synthetic.py`).

Each event type occupies its own region of the time-frequency plane or has its own temporal
pattern, so that a mel or CWT front-end at a 10 ms hop can tell the types apart:

| type            | what it sounds like                               | band            | pattern                  |
|-----------------|---------------------------------------------------|-----------------|--------------------------|
| `high_beep`     | steady sine pips                                  | 1.8-2.6 kHz     | 0.15-0.3 s pips          |
| `low_beep`      | steady sine pips with a weak 2nd harmonic         | 300-500 Hz      | 0.2-0.4 s pips           |
| `rising_siren`  | exponential upward sweep with harmonics           | 0.5 -> 1.6 kHz  | 0.8-1.6 s sweeps         |
| `falling_siren` | exponential downward sweep with harmonics         | 1.6 -> 0.5 kHz  | 0.8-1.6 s sweeps         |
| `hiss`          | band-passed noise (rain-like)                     | 0.8-7 kHz       | continuous               |
| `ticking`       | damped 3-4.5 kHz clicks at a slow or fast rate    | 2.5-5 kHz       | 1.5-2.5 Hz or 4-6 Hz     |
| `knocking`      | damped low thuds                                  | 120-250 Hz      | 0.25-0.45 s apart        |
| `engine_hum`    | harmonic drone (40-90 Hz fundamental), wobbling   | < 1 kHz         | continuous               |
| `bell`          | inharmonic partials with exponential decay        | 250 Hz-3.5 kHz  | 1.2-1.8 s strikes        |
| `bird_chirp`    | fast downward FM syllables                        | 2.8-6 kHz       | 2-3 syllables per call   |

Countable types are rendered as `count` units (a pip, a sweep, a knock, a strike, a call); continuous
types (`hiss`, `ticking`, `engine_hum`) last a requested duration and may fade in or out.
Every renderer returns a float32 waveform whose peak is 1; the scene mixer applies loudness.
All randomness comes from the `numpy.random.Generator` passed in, so a clip is a pure function
of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAMPLE_RATE = 16_000

EVENT_TYPES: tuple[str, ...] = (
    "high_beep",
    "low_beep",
    "rising_siren",
    "falling_siren",
    "hiss",
    "ticking",
    "knocking",
    "engine_hum",
    "bell",
    "bird_chirp",
)
COUNTABLE_TYPES: frozenset[str] = frozenset(
    {"high_beep", "low_beep", "rising_siren", "falling_siren", "knocking", "bell", "bird_chirp"}
)
CONTINUOUS_TYPES: frozenset[str] = frozenset({"hiss", "ticking", "engine_hum"})

# Ticking rates per caption word; the gap between them keeps "slow" and "fast" unambiguous.
TICK_RATES_HZ = {"slow": (1.5, 2.5), "fast": (4.0, 6.0)}

# Bell partial ratios (Risset-style bell): deliberately not integer multiples of the fundamental.
_BELL_RATIOS = np.array([0.56, 0.92, 1.19, 1.71, 2.0, 2.74, 3.0, 3.76, 4.07], dtype=np.float64)
_BELL_AMPS = np.array([1.0, 0.67, 1.0, 1.8, 2.67, 1.67, 1.46, 1.33, 1.33], dtype=np.float64)
_BELL_DECAYS = np.array([1.0, 0.9, 0.65, 0.55, 0.33, 0.35, 0.25, 0.2, 0.15], dtype=np.float64)


@dataclass
class EventPlan:
    """Where the units of one event fall (seconds, relative to the event start) and its parameters."""

    event_type: str
    duration: float
    unit_onsets: list[float] = field(default_factory=list)
    unit_durations: list[float] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.unit_onsets)


def _ramp(n: int, ramp: int) -> np.ndarray:
    """A flat envelope with raised-cosine edges of `ramp` samples (avoids clicks at unit edges)."""
    env = np.ones(n, dtype=np.float32)
    ramp = min(ramp, n // 2)
    if ramp > 0:
        edge = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, ramp, dtype=np.float32))).astype(np.float32)
        env[:ramp] = edge
        env[n - ramp :] = edge[::-1]
    return env


def _place(buffer: np.ndarray, unit: np.ndarray, start: int) -> None:
    end = min(len(buffer), start + len(unit))
    if end > start:
        buffer[start:end] += unit[: end - start]


def _normalise_peak(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x *= np.float32(1.0 / peak)
    return x


# ----------------------------------------------------------------------------- planning


def _plan_units(rng, count, unit_range, gap_range) -> tuple[list[float], list[float], float]:
    durations = rng.uniform(*unit_range, size=count)
    gaps = rng.uniform(*gap_range, size=max(0, count - 1))
    onsets = np.concatenate([[0.0], np.cumsum(durations[:-1] + gaps)]) if count > 1 else np.zeros(1)
    total = float(onsets[-1] + durations[-1])
    return [round(float(o), 4) for o in onsets], [round(float(d), 4) for d in durations], total


def plan_event(event_type: str, rng: np.random.Generator, *, count: int = 1, duration: float | None = None,
               rate: str | None = None) -> EventPlan:
    """Draws the timing and timbre of one event.

    Args:
        event_type: one of `EVENT_TYPES`.
        rng: the clip's random generator.
        count: repetitions (pips, sweeps, knocks, strikes, calls) for countable types, 1-3.
        duration: seconds, required for continuous types, ignored for countable ones.
        rate: `"slow"` or `"fast"` for `ticking`.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; expected one of {EVENT_TYPES}")
    if event_type in CONTINUOUS_TYPES:
        if duration is None or not duration > 0:
            raise ValueError(f"continuous event {event_type!r} needs a positive duration, got {duration!r}")
        plan = EventPlan(event_type, float(duration), [0.0], [float(duration)])
        if event_type == "ticking":
            if rate not in TICK_RATES_HZ:
                raise ValueError(f"ticking needs rate 'slow' or 'fast', got {rate!r}")
            plan.params = {"rate": rate, "rate_hz": float(rng.uniform(*TICK_RATES_HZ[rate])),
                           "freq": float(rng.uniform(3000, 4500))}
        elif event_type == "hiss":
            plan.params = {"low": float(rng.uniform(700, 1000)), "high": float(rng.uniform(6000, 7200))}
        else:
            plan.params = {"f0": float(rng.uniform(40, 90)), "wobble_hz": float(rng.uniform(2.0, 6.0))}
        return plan

    if not 1 <= count <= 3:
        raise ValueError(f"count must be 1, 2 or 3 for {event_type!r}, got {count}")
    params: dict = {}
    if event_type == "high_beep":
        params["freq"] = float(rng.uniform(1800, 2600))
        timing = _plan_units(rng, count, (0.15, 0.3), (0.15, 0.35))
    elif event_type == "low_beep":
        params["freq"] = float(rng.uniform(300, 500))
        timing = _plan_units(rng, count, (0.2, 0.4), (0.15, 0.35))
    elif event_type in ("rising_siren", "falling_siren"):
        low, high = float(rng.uniform(480, 650)), float(rng.uniform(1300, 1650))
        params["f_start"], params["f_end"] = (low, high) if event_type == "rising_siren" else (high, low)
        timing = _plan_units(rng, count, (0.8, 1.6), (0.15, 0.4))
    elif event_type == "knocking":
        params["freq"] = float(rng.uniform(120, 250))
        timing = _plan_units(rng, count, (0.12, 0.12), (0.13, 0.33))
    elif event_type == "bell":
        params["freq"] = float(rng.uniform(450, 850))
        timing = _plan_units(rng, count, (1.2, 1.8), (0.05, 0.3))
    else:  # bird_chirp
        params["syllables"] = int(rng.integers(2, 4))
        params["f_high"] = float(rng.uniform(4500, 6000))
        params["f_low"] = float(rng.uniform(2800, 3800))
        params["syllable_s"] = float(rng.uniform(0.04, 0.07))
        params["syllable_gap_s"] = float(rng.uniform(0.025, 0.04))
        unit = params["syllables"] * params["syllable_s"] + (params["syllables"] - 1) * params["syllable_gap_s"]
        timing = _plan_units(rng, count, (unit, unit), (0.3, 0.6))
    onsets, durations, total = timing
    return EventPlan(event_type, total, onsets, durations, params)


# ----------------------------------------------------------------------------- rendering


def _sweep(n: int, f_start: float, f_end: float, sr: int, harmonics=(1.0,)) -> np.ndarray:
    """Exponential frequency sweep (phase-integrated, so no discontinuities) with harmonics."""
    t = np.arange(n, dtype=np.float64) / sr
    duration = n / sr
    ratio = f_end / f_start
    if abs(ratio - 1.0) < 1e-9:
        phase = 2 * np.pi * f_start * t
    else:
        k = np.log(ratio) / duration
        phase = 2 * np.pi * f_start * (np.exp(k * t) - 1.0) / k
    out = np.zeros(n, dtype=np.float64)
    for h, amp in enumerate(harmonics, start=1):
        out += amp * np.sin(h * phase)
    return out.astype(np.float32)


def _render_units(plan: EventPlan, sr: int, unit_fn) -> np.ndarray:
    buffer = np.zeros(int(round(plan.duration * sr)) + 1, dtype=np.float32)
    for onset, dur in zip(plan.unit_onsets, plan.unit_durations):
        _place(buffer, unit_fn(int(round(dur * sr))), int(round(onset * sr)))
    return buffer


def _render_beep(plan, sr, rng):
    f = plan.params["freq"]
    second = 0.0 if plan.event_type == "high_beep" else 0.3
    return _render_units(plan, sr, lambda n: _sweep(n, f, f, sr, (1.0, second)) * _ramp(n, int(0.005 * sr)))


def _render_siren(plan, sr, rng):
    p = plan.params
    return _render_units(
        plan, sr, lambda n: _sweep(n, p["f_start"], p["f_end"], sr, (1.0, 0.35, 0.15)) * _ramp(n, int(0.03 * sr))
    )


def _render_knocking(plan, sr, rng):
    from scipy import signal

    f = plan.params["freq"]
    # Noise low-passed at 1 kHz: the knock is a dull thud, without the broadband click of ticking.
    thud_filter = signal.butter(4, 1000, btype="low", fs=sr, output="sos")

    def knock(n):
        t = np.arange(n, dtype=np.float32) / sr
        body = np.sin(2 * np.pi * f * t) * np.exp(-t / 0.025)
        transient = signal.sosfilt(thud_filter, rng.standard_normal(n)).astype(np.float32) * np.exp(-t / 0.008)
        return (body + 2.0 * transient).astype(np.float32)

    return _render_units(plan, sr, knock)


def _render_bell(plan, sr, rng):
    f = plan.params["freq"]
    partial_phases = rng.uniform(0, 2 * np.pi, size=len(_BELL_RATIOS))

    def strike(n):
        t = np.arange(n, dtype=np.float64) / sr
        freqs = f * _BELL_RATIOS
        keep = freqs < 0.45 * sr
        tones = np.sin(2 * np.pi * freqs[keep, None] * t[None, :] + partial_phases[keep, None])
        envs = np.exp(-t[None, :] / _BELL_DECAYS[keep, None])
        out = (_BELL_AMPS[keep, None] * tones * envs).sum(axis=0).astype(np.float32)
        return out * _ramp(n, int(0.002 * sr))

    return _render_units(plan, sr, strike)


def _render_bird(plan, sr, rng):
    p = plan.params
    n_syl = int(round(p["syllable_s"] * sr))
    step = n_syl + int(round(p["syllable_gap_s"] * sr))
    window = np.sin(np.linspace(0, np.pi, n_syl, dtype=np.float32)) ** 2
    syllable = _sweep(n_syl, p["f_high"], p["f_low"], sr) * window

    def call(n):
        out = np.zeros(n, dtype=np.float32)
        for s in range(p["syllables"]):
            _place(out, syllable, s * step)
        return out

    return _render_units(plan, sr, call)


def _render_hiss(plan, sr, rng):
    n = int(round(plan.duration * sr)) + 1
    from scipy import signal  # imported here so that `llm-aac --help` stays fast

    noise = rng.standard_normal(n, dtype=np.float32)
    sos = signal.butter(2, [plan.params["low"], plan.params["high"]], btype="band", fs=sr, output="sos")
    return signal.sosfilt(sos, noise).astype(np.float32)


def _render_ticking(plan, sr, rng):
    n = int(round(plan.duration * sr)) + 1
    out = np.zeros(n, dtype=np.float32)
    period = 1.0 / plan.params["rate_hz"]
    klen = int(0.03 * sr)
    t = np.arange(klen, dtype=np.float32) / sr
    # "tick" and "tock" differ slightly in pitch, like a mechanical clock.
    kernels = [np.sin(2 * np.pi * f * t) * np.exp(-t / 0.004) for f in (plan.params["freq"], plan.params["freq"] * 0.85)]
    for i, onset in enumerate(np.arange(0.02, plan.duration - 0.03, period)):
        _place(out, kernels[i % 2].astype(np.float32), int(onset * sr))
    return out


_ENGINE_TABLE_SIZE = 4096


def _engine_table() -> np.ndarray:
    phase = np.arange(_ENGINE_TABLE_SIZE) / _ENGINE_TABLE_SIZE * 2 * np.pi
    harmonics = np.arange(1, 13)
    # Strong low harmonics, a formant-like bump at 4-6, rolling off above: a diesel-ish drone.
    amps = 1.0 / harmonics + 0.4 * np.exp(-0.5 * ((harmonics - 5) / 1.2) ** 2)
    return (amps[:, None] * np.sin(harmonics[:, None] * phase[None, :])).sum(axis=0).astype(np.float32)


_ENGINE_WAVE = _engine_table()


def _render_engine(plan, sr, rng):
    from scipy import signal

    n = int(round(plan.duration * sr)) + 1
    p = plan.params
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    # A slow pitch wobble and amplitude rumble; a wavetable keeps the 12 harmonics cheap.
    inst_f = p["f0"] * (1.0 + 0.02 * np.sin(2 * np.pi * 0.3 * t))
    phase = np.cumsum(inst_f, dtype=np.float64) / sr
    idx = ((phase % 1.0) * _ENGINE_TABLE_SIZE).astype(np.int64)
    wave = _ENGINE_WAVE[idx] * (1.0 + 0.25 * np.sin(2 * np.pi * p["wobble_hz"] * t)).astype(np.float32)
    noise = rng.standard_normal(n, dtype=np.float32)
    sos = signal.butter(2, 300, btype="low", fs=sr, output="sos")
    return (wave + 0.6 * signal.sosfilt(sos, noise).astype(np.float32) * 4.0).astype(np.float32)


_RENDERERS = {
    "high_beep": _render_beep,
    "low_beep": _render_beep,
    "rising_siren": _render_siren,
    "falling_siren": _render_siren,
    "hiss": _render_hiss,
    "ticking": _render_ticking,
    "knocking": _render_knocking,
    "engine_hum": _render_engine,
    "bell": _render_bell,
    "bird_chirp": _render_bird,
}


def render_event(plan: EventPlan, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Renders a planned event as float32 audio of `plan.duration` seconds with peak 1."""
    out = _RENDERERS[plan.event_type](plan, sr, rng)
    out = out[: int(round(plan.duration * sr))]
    if plan.event_type in CONTINUOUS_TYPES:
        out *= _ramp(len(out), int(0.02 * sr))
    return _normalise_peak(np.ascontiguousarray(out, dtype=np.float32))
