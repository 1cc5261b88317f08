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

#: The two roles a component plays (docs/explanations.md): evidence for this scene
#: against the scenes it is confused with, or part of a bed several scenes share.
SCENE = "scene"
SHARED = "shared"
ROLES: tuple[str, ...] = (SCENE, SHARED)


class Mix:
    """The running sum of a recipe's components, tagged by role.

    ``total`` is built by exactly the operations ``out = a; out += b; ...`` performs, so
    tagging changes no sample of the mix. With ``keep`` the scene-specific components
    are also summed on their own (``scene``, None when there were none).
    """

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.total: np.ndarray | None = None
        self.scene: np.ndarray | None = None

    def add(self, role: str, x: np.ndarray) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if self.keep and role == SCENE:
            self.scene = x.copy() if self.scene is None else self.scene + x
        if self.total is None:
            self.total = x
        else:
            self.total += x

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


def _vehicle_interior(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix, engine_db: float,
                      rail_db: float, whine_db: float, tunnel_db: float) -> None:
    """The shared bus/metro/tram bed: engine, rails, motor, road/tunnel rumble, riders.

    The propulsion is the vehicle's evidence: the engine where it leads the mix (the
    bus), the rails and the traction motor where they are present (tram, metro).
    """
    mix.add(SCENE if engine_db > -6 else SHARED,
            _g(traits, rng, 0, engine_db) * S.engine(rng, n, sr, traits["engine_f0"]))
    if rail_db > -60:
        speed = traits["rail_speed"] * rng.uniform(0.7, 1.2)
        mix.add(SCENE, _g(traits, rng, 1, rail_db) * S.rail_clatter(rng, n, sr, speed))
    if whine_db > -60:
        lo = traits["whine_lo"]
        hi = lo * traits["whine_span"]
        a, b = (lo, hi) if rng.random() < 0.5 else (hi, lo)
        mix.add(SCENE, _g(traits, rng, 2, whine_db) * S.motor_whine(rng, n, sr, a, b))
    rumble = S.filt(S.colored_noise(rng, n, -6.0), "lowpass", rng.uniform(150, 400), sr)
    mix.add(SHARED, _g(traits, rng, 3, tunnel_db) * S.unit(rumble))
    mix.add(SHARED, _g(traits, rng, 4, -10.0) * S.babble(rng, n, sr, _crowd(traits, rng, 1, 6)))
    if rng.random() < 0.25:
        mix.add(SHARED, S.db(-8 + rng.normal(0, 3)) * S.door_beeps(rng, n, sr))
    if rng.random() < 0.2:
        mix.add(SHARED, S.db(-14 + rng.normal(0, 3)) * S.brake_squeal(rng, n, sr))


def bus(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    _vehicle_interior(traits, rng, n, sr, mix, engine_db=0.0, rail_db=-99.0,
                      whine_db=-99.0, tunnel_db=-3.0)


def tram(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    _vehicle_interior(traits, rng, n, sr, mix, engine_db=-9.0, rail_db=-4.0,
                      whine_db=-5.0, tunnel_db=-6.0)
    if rng.random() < 0.2:
        mix.add(SCENE, S.db(-8 + rng.normal(0, 3)) * S.bell(rng, n, sr))


def metro(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    _vehicle_interior(traits, rng, n, sr, mix, engine_db=-12.0, rail_db=0.0,
                      whine_db=-6.0, tunnel_db=1.0)


def _hall(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix, crowd: tuple[int, int],
          announce_p: float) -> None:
    """The shared airport/mall/station bed: crowd, steps on hard floors, HVAC, PA."""
    mix.add(SHARED, _g(traits, rng, 0, 0.0) * S.babble(rng, n, sr,
                                                        max(1, _crowd(traits, rng, *crowd))))
    mix.add(SHARED, _g(traits, rng, 1, -7.0) * S.footsteps(rng, n, sr, _crowd(traits, rng, 1, 6),
                                                           traits["hard_floor"]))
    mix.add(SHARED, _g(traits, rng, 2, -9.0) * S.hvac(rng, n, sr, traits["mains"]))
    if rng.random() < announce_p:
        mix.add(SHARED, _g(traits, rng, 3, -3.0) * S.announcement(rng, n, sr))


def airport(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    _hall(traits, rng, n, sr, mix, (6, 20), 0.45)
    mix.add(SCENE, _g(traits, rng, 4, -8.0) * S.rolling_cases(rng, n, sr, int(rng.poisson(1.0))))


def shopping_mall(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    _hall(traits, rng, n, sr, mix, (4, 16), 0.12)
    if traits["music"]:
        mix.add(SCENE, _g(traits, rng, 4, -5.0) * S.music(rng, n, sr, rng.uniform(85, 125)))


def metro_station(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    _hall(traits, rng, n, sr, mix, (2, 10), 0.4)
    if rng.random() < 0.45:  # a train arrives or leaves
        env = np.clip(S.smooth_curve(rng, n, sr, 0.4) + 0.5, 0, None)
        train = S.rail_clatter(rng, n, sr, rng.uniform(5, 15)) + 0.5 * S.motor_whine(
            rng, n, sr, rng.uniform(200, 500), rng.uniform(500, 1200))
        mix.add(SCENE, _g(traits, rng, 5, -2.0) * train * env)
    if rng.random() < 0.15:
        mix.add(SCENE, S.db(-10 + rng.normal(0, 3)) * S.door_beeps(rng, n, sr))


def _outdoor_people(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix,
                    crowd: tuple[int, int], traffic_dist: tuple[float, float],
                    traffic_db: float) -> None:
    """The shared street_pedestrian/public_square bed: babble, steps, distant traffic."""
    mix.add(SHARED, _g(traits, rng, 0, 0.0) * S.babble(rng, n, sr, _crowd(traits, rng, *crowd)))
    mix.add(SHARED, _g(traits, rng, 1, -5.0) * S.footsteps(rng, n, sr, _crowd(traits, rng, 1, 8),
                                                           traits["hard_floor"] * 0.6))
    lo, hi = traffic_dist
    dist = hi - (hi - lo) * traits["traffic"]
    mix.add(SHARED, _g(traits, rng, 2, traffic_db) * S.traffic(
        rng, n, sr, 0.3 + 0.5 * traits["traffic"], dist))
    mix.add(SHARED, _g(traits, rng, 3, -14.0 + 8 * traits["wind"]) * S.wind(
        rng, n, sr, rng.uniform(150, 500), 1.0))


def street_pedestrian(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    _outdoor_people(traits, rng, n, sr, mix, (4, 14), (10.0, 35.0), -5.0)
    if rng.random() < 0.08:
        mix.add(SCENE, S.db(-12) * S.horn(rng, n, sr))
    if traits["birds"] > 0.7:
        mix.add(SHARED, _g(traits, rng, 4, -18.0) * S.birdsong(rng, n, sr, 0.8))


def public_square(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    _outdoor_people(traits, rng, n, sr, mix, (3, 12), (25.0, 70.0), -8.0)
    mix.add(SCENE, _g(traits, rng, 4, -14.0) * S.birdsong(rng, n, sr, 1.5 * traits["birds"]))
    if traits["water"]:
        mix.add(SCENE, _g(traits, rng, 5, -11.0) * S.water(rng, n, sr))


def street_traffic(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    dist = 12.0 - 8.0 * traits["traffic"]
    mix.add(SCENE, _g(traits, rng, 0, 0.0) * S.traffic(rng, n, sr,
                                                        0.5 + 1.2 * traits["traffic"], dist))
    if rng.random() < 0.4:  # a vehicle idling at the lights
        mix.add(SCENE, _g(traits, rng, 1, -7.0) * S.engine(rng, n, sr, rng.uniform(12, 30)))
    if rng.random() < 0.15:
        mix.add(SCENE, S.db(-6 + rng.normal(0, 3)) * S.horn(rng, n, sr))
    mix.add(SHARED, _g(traits, rng, 2, -12.0 + 6 * traits["wind"]) * S.wind(
        rng, n, sr, rng.uniform(150, 500), 1.0))
    mix.add(SHARED, _g(traits, rng, 3, -16.0) * S.babble(rng, n, sr, _crowd(traits, rng, 0, 3)))
    mix.add(SHARED, _g(traits, rng, 4, -18.0) * S.footsteps(rng, n, sr,
                                                            _crowd(traits, rng, 0, 3), 0.5))


def park(traits: Traits, rng: Rng, n: int, sr: int, mix: Mix) -> None:
    mix.add(SHARED, _g(traits, rng, 0, -3.0 + 6 * traits["wind"]) * S.wind(
        rng, n, sr, rng.uniform(120, 600), 1.2))
    mix.add(SCENE, _g(traits, rng, 1, -2.0) * S.birdsong(rng, n, sr,
                                                         0.5 + 3.0 * traits["birds"]))
    mix.add(SHARED, _g(traits, rng, 2, -7.0) * S.traffic(rng, n, sr, 0.4,
                                                         60 + 90 * (1 - traits["traffic"])))
    mix.add(SHARED, _g(traits, rng, 3, -10.0) * S.babble(rng, n, sr, _crowd(traits, rng, 0, 4),
                                                         f0_mean=260.0))
    mix.add(SHARED, _g(traits, rng, 4, -15.0) * S.footsteps(rng, n, sr,
                                                            _crowd(traits, rng, 0, 3), 0.1))
    if traits["water"]:
        mix.add(SCENE, _g(traits, rng, 5, -14.0) * S.water(rng, n, sr))


RECIPES: dict[str, Callable[[Traits, Rng, int, int, Mix], None]] = {
    "airport": airport, "bus": bus, "metro": metro, "metro_station": metro_station,
    "park": park, "public_square": public_square, "shopping_mall": shopping_mall,
    "street_pedestrian": street_pedestrian, "street_traffic": street_traffic, "tram": tram,
}


def render_scene(scene: str, traits: Traits, rng: Rng, n: int, sr: int) -> np.ndarray:
    """The dry-plus-room scene signal at the recording position, scaled to its level.

    Reverberant scenes are rendered with a pre-roll as long as the room's decay to about
    -20 dB, so the clip starts mid-scene instead of with a tail-less onset, then cut.
    """
    return render_scene_parts(scene, traits, rng, n, sr, keep=False)[0]


def _like_unit(part: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``part`` scaled by the factor ``S.unit`` applies to the mix ``x`` it belongs to."""
    r = S.rms(x)
    return part / r if r > 1e-12 else part


def render_scene_parts(scene: str, traits: Traits, rng: Rng, n: int, sr: int,
                       keep: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``render_scene``'s signal and, with ``keep``, its scene-specific part.

    Every step after the recipe (normalisation, room, high-pass, level) is linear with
    factors taken from the whole mix, so the scene-specific components are carried
    through the same steps with the mix's factors; the shared part is the signal minus
    them. The mix itself is computed by the same operations and random draws as without
    ``keep``: its samples do not change.
    """
    rt60 = traits["rt60"]
    pre = int(min(0.3 * rt60, 0.75) * sr)
    mix = Mix(keep)
    RECIPES[scene](traits, rng, n + pre, sr, mix)
    x = mix.total
    part = mix.scene if keep else None
    if keep and part is None:
        part = np.zeros(n + pre)
    bed = S.filt(S.colored_noise(rng, n + pre, traits["tone_tilt"]), "highpass", 20.0, sr)
    if part is not None:
        part = _like_unit(part, x)
    x = S.unit(x) + S.db(traits["tone_gain"]) * bed
    x, part = S.reverberate_part(rng, x, part, sr, rt60, traits["wet"])
    x = S.filt(x[pre:], "highpass", 15.0, sr)  # no DC or sub-sonic drift at the microphone
    level = traits["level"] + rng.normal(0, 1.5)
    if part is not None:
        part = _like_unit(S.filt(part[pre:], "highpass", 15.0, sr), x) * S.db(level)
    return S.unit(x) * S.db(level), part
