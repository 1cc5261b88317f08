"""Scene recipes: which components a scene mixes, at what balance, in what room.

A recipe draws its parameters from two places: the *location* (traits that persist
for every clip recorded there, e.g. the bus line's engine, the hall's reverberation,
how busy the square is) and the *clip* (what happens in these seconds). That is why
the train/evaluate split by location matters: a model must generalise to unseen
places, not memorise one room. Scenes deliberately share components: bus/metro/tram
(vehicle engine and interior), street_pedestrian/public_square (babble, footsteps,
distant traffic), airport/shopping_mall/metro_station (reverberant babble and
announcements), so the task has the confusions the real one has.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import sources as S

Rng = np.random.Generator
Traits = dict[str, float]

#: Typical level of each scene in dBFS RMS at device A (loud metro, quiet park).
SCENE_LEVEL_DB: dict[str, float] = {
    "airport": -30.0, "bus": -25.0, "metro": -22.0, "metro_station": -27.0, "park": -33.0,
    "public_square": -29.0, "shopping_mall": -28.0, "street_pedestrian": -28.0,
    "street_traffic": -24.0, "tram": -25.0,
}

#: Reverberation time range per scene (s); 0 means outdoors, no room.
SCENE_RT60: dict[str, tuple[float, float]] = {
    "airport": (1.4, 2.8), "shopping_mall": (0.9, 2.0), "metro_station": (1.4, 3.0),
    "bus": (0.25, 0.5), "tram": (0.3, 0.6), "metro": (0.35, 0.7),
    "park": (0.0, 0.0), "public_square": (0.0, 0.0), "street_pedestrian": (0.0, 0.0),
    "street_traffic": (0.0, 0.0),
}


def draw_location(scene: str, rng: Rng) -> Traits:
    """Persistent traits of one recording location of ``scene``."""
    lo, hi = SCENE_RT60[scene]
    return {
        "level": SCENE_LEVEL_DB[scene] + rng.normal(0, 3.0),
        "rt60": rng.uniform(lo, hi) if hi > 0 else 0.0,
        "wet": rng.uniform(0.45, 0.85) if hi > 1.0 else rng.uniform(0.15, 0.35),
        "crowd": rng.uniform(0.0, 1.0),  # how busy the place is
        "traffic": rng.uniform(0.0, 1.0),  # how close/dense the road traffic is
        "engine_f0": rng.uniform(22.0, 45.0),  # the vehicle (line) recorded here
        "whine_lo": rng.uniform(150.0, 600.0),
        "whine_span": rng.uniform(1.3, 3.0),
        "rail_speed": rng.uniform(8.0, 22.0),
        "wind": rng.uniform(0.0, 1.0),
        "birds": rng.uniform(0.0, 1.0),
        "music": float(rng.random() < 0.75),
        "water": float(rng.random() < 0.3),
        "tone_tilt": rng.uniform(-6.0, -1.5),  # colour of the place's background bed
        "tone_gain": rng.uniform(-22.0, -10.0),
        "mains": float(rng.choice([50.0, 50.0, 60.0])),
        "hard_floor": rng.uniform(0.2, 1.0),
        **{f"g{i}": rng.normal(0, 3.0) for i in range(8)},  # per-component balance
    }


def _g(traits: Traits, rng: Rng, i: int, base: float, clip_sd: float = 2.0) -> float:
    """Gain (linear) of component ``i``: recipe base + location balance + clip jitter."""
    return S.db(base + traits[f"g{i}"] + rng.normal(0, clip_sd))


def _crowd(traits: Traits, rng: Rng, lo: int, hi: int) -> int:
    mean = lo + (hi - lo) * traits["crowd"]
    return max(0, int(round(mean + rng.normal(0, 1.5))))


def _vehicle_interior(traits: Traits, rng: Rng, n: int, sr: int, engine_db: float,
                      rail_db: float, whine_db: float, tunnel_db: float) -> np.ndarray:
    """The shared bus/metro/tram bed: engine, rails, motor, road/tunnel rumble, riders."""
    out = _g(traits, rng, 0, engine_db) * S.engine(rng, n, sr, traits["engine_f0"])
    if rail_db > -60:
        speed = traits["rail_speed"] * rng.uniform(0.7, 1.2)
        out += _g(traits, rng, 1, rail_db) * S.rail_clatter(rng, n, sr, speed)
    if whine_db > -60:
        lo = traits["whine_lo"]
        hi = lo * traits["whine_span"]
        a, b = (lo, hi) if rng.random() < 0.5 else (hi, lo)
        out += _g(traits, rng, 2, whine_db) * S.motor_whine(rng, n, sr, a, b)
    rumble = S.filt(S.colored_noise(rng, n, -6.0), "lowpass", rng.uniform(150, 400), sr)
    out += _g(traits, rng, 3, tunnel_db) * S.unit(rumble)
    out += _g(traits, rng, 4, -10.0) * S.babble(rng, n, sr, _crowd(traits, rng, 1, 6))
    if rng.random() < 0.25:
        out += S.db(-8 + rng.normal(0, 3)) * S.door_beeps(rng, n, sr)
    if rng.random() < 0.2:
        out += S.db(-14 + rng.normal(0, 3)) * S.brake_squeal(rng, n, sr)
    return out


def bus(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    return _vehicle_interior(traits, rng, n, sr, engine_db=0.0, rail_db=-99.0,
                             whine_db=-99.0, tunnel_db=-3.0)


def tram(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    out = _vehicle_interior(traits, rng, n, sr, engine_db=-9.0, rail_db=-4.0,
                            whine_db=-5.0, tunnel_db=-6.0)
    if rng.random() < 0.2:
        out += S.db(-8 + rng.normal(0, 3)) * S.bell(rng, n, sr)
    return out


def metro(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    return _vehicle_interior(traits, rng, n, sr, engine_db=-12.0, rail_db=0.0,
                             whine_db=-6.0, tunnel_db=1.0)


def _hall(traits: Traits, rng: Rng, n: int, sr: int, crowd: tuple[int, int],
          announce_p: float) -> np.ndarray:
    """The shared airport/mall/station bed: crowd, steps on hard floors, HVAC, PA."""
    out = _g(traits, rng, 0, 0.0) * S.babble(rng, n, sr, max(1, _crowd(traits, rng, *crowd)))
    out += _g(traits, rng, 1, -7.0) * S.footsteps(rng, n, sr, _crowd(traits, rng, 1, 6),
                                                  traits["hard_floor"])
    out += _g(traits, rng, 2, -9.0) * S.hvac(rng, n, sr, traits["mains"])
    if rng.random() < announce_p:
        out += _g(traits, rng, 3, -3.0) * S.announcement(rng, n, sr)
    return out


def airport(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    out = _hall(traits, rng, n, sr, (6, 20), 0.45)
    out += _g(traits, rng, 4, -8.0) * S.rolling_cases(rng, n, sr, int(rng.poisson(1.0)))
    return out


def shopping_mall(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    out = _hall(traits, rng, n, sr, (4, 16), 0.12)
    if traits["music"]:
        out += _g(traits, rng, 4, -5.0) * S.music(rng, n, sr, rng.uniform(85, 125))
    return out


def metro_station(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    out = _hall(traits, rng, n, sr, (2, 10), 0.4)
    if rng.random() < 0.45:  # a train arrives or leaves
        env = np.clip(S.smooth_curve(rng, n, sr, 0.4) + 0.5, 0, None)
        train = S.rail_clatter(rng, n, sr, rng.uniform(5, 15)) + 0.5 * S.motor_whine(
            rng, n, sr, rng.uniform(200, 500), rng.uniform(500, 1200))
        out += _g(traits, rng, 5, -2.0) * train * env
    if rng.random() < 0.15:
        out += S.db(-10 + rng.normal(0, 3)) * S.door_beeps(rng, n, sr)
    return out


def _outdoor_people(traits: Traits, rng: Rng, n: int, sr: int, crowd: tuple[int, int],
                    traffic_dist: tuple[float, float], traffic_db: float) -> np.ndarray:
    """The shared street_pedestrian/public_square bed: babble, steps, distant traffic."""
    out = _g(traits, rng, 0, 0.0) * S.babble(rng, n, sr, _crowd(traits, rng, *crowd))
    out += _g(traits, rng, 1, -5.0) * S.footsteps(rng, n, sr, _crowd(traits, rng, 1, 8),
                                                  traits["hard_floor"] * 0.6)
    lo, hi = traffic_dist
    dist = hi - (hi - lo) * traits["traffic"]
    out += _g(traits, rng, 2, traffic_db) * S.traffic(rng, n, sr, 0.3 + 0.5 * traits["traffic"],
                                                      dist)
    out += _g(traits, rng, 3, -14.0 + 8 * traits["wind"]) * S.wind(
        rng, n, sr, rng.uniform(150, 500), 1.0)
    return out


def street_pedestrian(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    out = _outdoor_people(traits, rng, n, sr, (4, 14), (10.0, 35.0), -5.0)
    if rng.random() < 0.08:
        out += S.db(-12) * S.horn(rng, n, sr)
    if traits["birds"] > 0.7:
        out += _g(traits, rng, 4, -18.0) * S.birdsong(rng, n, sr, 0.8)
    return out


def public_square(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    out = _outdoor_people(traits, rng, n, sr, (3, 12), (25.0, 70.0), -8.0)
    out += _g(traits, rng, 4, -14.0) * S.birdsong(rng, n, sr, 1.5 * traits["birds"])
    if traits["water"]:
        out += _g(traits, rng, 5, -11.0) * S.water(rng, n, sr)
    return out


def street_traffic(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    dist = 12.0 - 8.0 * traits["traffic"]
    out = _g(traits, rng, 0, 0.0) * S.traffic(rng, n, sr, 0.5 + 1.2 * traits["traffic"], dist)
    if rng.random() < 0.4:  # a vehicle idling at the lights
        out += _g(traits, rng, 1, -7.0) * S.engine(rng, n, sr, rng.uniform(12, 30))
    if rng.random() < 0.15:
        out += S.db(-6 + rng.normal(0, 3)) * S.horn(rng, n, sr)
    out += _g(traits, rng, 2, -12.0 + 6 * traits["wind"]) * S.wind(
        rng, n, sr, rng.uniform(150, 500), 1.0)
    out += _g(traits, rng, 3, -16.0) * S.babble(rng, n, sr, _crowd(traits, rng, 0, 3))
    out += _g(traits, rng, 4, -18.0) * S.footsteps(rng, n, sr, _crowd(traits, rng, 0, 3), 0.5)
    return out


def park(traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    out = _g(traits, rng, 0, -3.0 + 6 * traits["wind"]) * S.wind(
        rng, n, sr, rng.uniform(120, 600), 1.2)
    out += _g(traits, rng, 1, -2.0) * S.birdsong(rng, n, sr, 0.5 + 3.0 * traits["birds"])
    out += _g(traits, rng, 2, -7.0) * S.traffic(rng, n, sr, 0.4, 60 + 90 * (1 - traits["traffic"]))
    out += _g(traits, rng, 3, -10.0) * S.babble(rng, n, sr, _crowd(traits, rng, 0, 4),
                                                f0_mean=260.0)
    out += _g(traits, rng, 4, -15.0) * S.footsteps(rng, n, sr, _crowd(traits, rng, 0, 3), 0.1)
    if traits["water"]:
        out += _g(traits, rng, 5, -14.0) * S.water(rng, n, sr)
    return out


RECIPES: dict[str, Callable[[Traits, Rng, int, int], np.ndarray]] = {
    "airport": airport, "bus": bus, "metro": metro, "metro_station": metro_station,
    "park": park, "public_square": public_square, "shopping_mall": shopping_mall,
    "street_pedestrian": street_pedestrian, "street_traffic": street_traffic, "tram": tram,
}


def render_scene(scene: str, traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    """The dry-plus-room scene signal at the recording position, scaled to its level.

    Reverberant scenes are rendered with a pre-roll as long as the room's decay to about
    -20 dB, so the clip starts mid-scene instead of with a tail-less onset, then cut.
    """
    rt60 = traits["rt60"]
    pre = int(min(0.3 * rt60, 0.75) * sr)
    x = RECIPES[scene](traits, rng, n + pre, sr)
    bed = S.filt(S.colored_noise(rng, n + pre, traits["tone_tilt"]), "highpass", 20.0, sr)
    x = S.unit(x) + S.db(traits["tone_gain"]) * bed
    x = S.reverberate(rng, x, sr, rt60, traits["wet"])[pre:]
    x = S.filt(x, "highpass", 15.0, sr)  # no DC or sub-sonic drift at the microphone
    level = traits["level"] + rng.normal(0, 1.5)
    return S.unit(x) * S.db(level)
