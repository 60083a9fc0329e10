"""Synthetic sprites: a procedural stand-in for the LPC Sprites data that needs no files.

Same label structure as Sprites: a character is (body, bottom, top, hair), each 0..5, giving 1296
characters; each acts out 3 actions (walk, spellcast, slash) in 3 directions (front, left, right) over
8 frames. Every attribute value changes both a shape and a colour (a head shape and skin tone, trousers
or shorts or a skirt, sleeves or stripes, six haircuts), and every action moves the limbs (walking legs,
raised arms with a growing orb, a sword swing), so neither appearance nor motion is a colour trick.
Each clip also gets a small horizontal offset drawn from the seed: a static nuisance that belongs in f.

The renderer draws each layer once per (pose, style) as a small paint-index mask and then colours all
characters at once with numpy gathers, so the full 11,664 clips take seconds.
"""

from __future__ import annotations

import numpy as np

from ..clips import SIZE
from .labels import N_FRAMES, Split, character_index, split_characters

# Part of the data's identity: bump when a change alters the pixels. Version 2: distinct skin tones
# and a face that long hair no longer covers in front view (it hid the body label: the judge's
# body head stalled at 97.9%).
VERSION = 2

# --- geometry helpers -------------------------------------------------------------------------
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5


def _capsule(p0, p1, r):
    """Pixels within distance r of the segment p0-p1 (points as (y, x))."""
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    length2 = dy * dy + dx * dx
    t = 0.0 if length2 == 0 else np.clip(((_YY - y0) * dy + (_XX - x0) * dx) / length2, 0, 1)
    return (_YY - (y0 + t * dy)) ** 2 + (_XX - (x0 + t * dx)) ** 2 <= r * r


def _ellipse(c, ry, rx):
    return ((_YY - c[0]) / ry) ** 2 + ((_XX - c[1]) / rx) ** 2 <= 1.0


def _rect(y0, y1, x0, x1):
    return (_YY >= y0) & (_YY < y1) & (_XX >= x0) & (_XX < x1)


def _polar(origin, length, angle):
    """Point at `length` from origin; angle 0 points down, positive angles turn towards -x."""
    return (origin[0] + length * np.cos(angle), origin[1] - length * np.sin(angle))


# --- poses ------------------------------------------------------------------------------------
HEAD = (15.5, 32.0)
SHOULDER_Y, HIP_Y, ARM, LEG = 25.0, 39.0, 12.5, 15.0
# Per-frame profiles of each action: walk phase, arm raise for spellcast, sword angle for slash.
_WALK = np.sin(2 * np.pi * np.arange(N_FRAMES) / N_FRAMES)
_RAISE = np.array([0.0, 0.2, 0.45, 0.7, 0.9, 1.0, 0.9, 0.55])
_SWING = np.deg2rad([170, 150, 120, 85, 50, 20, 50, 160])


def _pose(action: int, view: str, frame: int) -> dict:
    """Joint positions of one frame. view is 'front' or 'side' (facing -x, i.e. left)."""
    bob = abs(_WALK[frame]) if action == 0 else 0.0
    head = (HEAD[0] + bob, HEAD[1])
    p = {"head": head, "bob": bob, "sword": None, "orb": None}
    if view == "front":
        sl, sr = (SHOULDER_Y + bob, 24.5), (SHOULDER_Y + bob, 39.5)
        hl, hr = (HIP_Y + bob, 28.5), (HIP_Y + bob, 35.5)
        lift_l, lift_r = 4 * max(0, _WALK[frame]), 4 * max(0, -_WALK[frame])
        if action != 0:
            lift_l = lift_r = 0.0
        p["feet"] = [(hl[0] + LEG - bob - lift_l, 27.5), (hr[0] + LEG - bob - lift_r, 36.5)]
        if action == 0:  # arms swing: a forward arm looks shorter from the front
            a_l, a_r = 0.25, -0.25
            len_l, len_r = ARM - 3 * max(0, -_WALK[frame]), ARM - 3 * max(0, _WALK[frame])
        elif action == 1:  # spellcast: both arms rise sideways above the head
            a_l, a_r = -2.6 * _RAISE[frame] - 0.2, 2.6 * _RAISE[frame] + 0.2
            len_l = len_r = ARM
            if _RAISE[frame] > 0.6:
                p["orb"] = ((head[0] - 13, 32.0), 2 + 4 * (_RAISE[frame] - 0.6))
        else:  # slash: the right arm swings a sword from above the head down across the body
            a_l, a_r = 0.25, _SWING[frame] - 0.2
            len_l, len_r = ARM, ARM - 2
        p["shoulders"] = [sl, sr]
        p["hands"] = [_polar(sl, len_l, a_l), _polar(sr, len_r, a_r)]
        p["hips"] = [hl, hr]
        if action == 2:
            p["sword"] = (p["hands"][1], _polar(p["hands"][1], 11, a_r + 0.3))
        p["torso"] = (SHOULDER_Y - 2 + bob, HIP_Y + 1 + bob, 25.0, 39.0)
    else:
        s, h = (SHOULDER_Y + bob, 32.5), (HIP_Y + bob, 32.0)
        if action == 0:
            a_far, a_near = -0.5 * _WALK[frame], 0.5 * _WALK[frame]
            l_far, l_near = 0.45 * _WALK[frame], -0.45 * _WALK[frame]
        elif action == 1:  # both arms rise forward
            a_far = a_near = 2.4 * _RAISE[frame]
            l_far, l_near = 0.0, 0.0
            if _RAISE[frame] > 0.6:
                p["orb"] = ((head[0] - 6, 17.0), 2 + 4 * (_RAISE[frame] - 0.6))
        else:
            a_far, a_near = 0.15, _SWING[frame] - 0.6
            l_far, l_near = 0.25, -0.15
        p["shoulders"] = [s, s]
        p["hands"] = [_polar(s, ARM, a_far), _polar(s, ARM, a_near)]
        p["hips"] = [h, h]
        p["feet"] = [_polar(h, LEG, l_far), _polar(h, LEG, l_near)]
        if action == 2:
            p["sword"] = (p["hands"][1], _polar(p["hands"][1], 12, a_near + 0.2))
        p["torso"] = (SHOULDER_Y - 2 + bob, HIP_Y + 1 + bob, 28.0, 37.0)
    return p


# --- layers: paint-index masks (0 clear, 1 main, 2 shade, 3 detail) ---------------------------
def _paint(mask, region, index):
    mask[region] = index


def _body(p, style, view):
    m = np.zeros((SIZE, SIZE), np.uint8)
    far = 2 if view == "side" else 1  # limbs behind the torso are shaded in profile
    _paint(m, _capsule(p["shoulders"][0], p["hands"][0], 2.0), far)
    _paint(m, _capsule(p["hips"][0], p["feet"][0], 2.2), far)
    _paint(m, _rect(*p["torso"]), 1)
    _paint(m, _capsule(p["hips"][1], p["feet"][1], 2.2), 1)
    _paint(m, _rect(p["head"][0] + 4, p["head"][0] + 9, 30, 34), 1)  # neck
    ry, rx = [(7.0, 6.5), (7.8, 5.8), (6.4, 7.4)][style % 3]
    _paint(m, _ellipse(p["head"], ry, rx), 1)
    eye_y = p["head"][0] + 0.5
    eyes = [(eye_y, 29.0), (eye_y, 35.0)] if view == "front" else [(eye_y, 28.0)]
    for e in eyes:
        _paint(m, _ellipse(e, 1.3, 1.0), 3)
    _paint(m, _capsule(p["shoulders"][1], p["hands"][1], 2.0), 1)
    return m


def _bottom(p, style, view):
    m = np.zeros((SIZE, SIZE), np.uint8)
    far = 2 if view == "side" else 1
    for leg, paint in ((0, far), (1, 1)):
        hip, foot = p["hips"][leg], p["feet"][leg]
        if style % 3 == 0:  # trousers
            _paint(m, _capsule(hip, foot, 2.7), paint)
        elif style % 3 == 1:  # shorts
            knee = ((hip[0] + foot[0]) / 2, (hip[1] + foot[1]) / 2)
            _paint(m, _capsule(hip, knee, 3.0), paint)
    y0, y1, x0, x1 = p["torso"]
    if style % 3 == 2:  # skirt: a trapezoid widening downwards
        top, depth = y1 - 3, 10.0
        widen = np.clip((_YY - top) / depth, 0, 1) * 4
        _paint(m, (_YY >= top) & (_YY < top + depth) & (_XX >= x0 - widen) & (_XX < x1 + widen), 1)
    _paint(m, _rect(y1 - 3, y1, x0, x1), 1)
    _paint(m, _rect(y1 - 4, y1 - 2, x0, x1), 3)  # belt
    return m


def _top(p, style, view):
    m = np.zeros((SIZE, SIZE), np.uint8)
    far = 2 if view == "side" else 1
    sleeves = [1.0, 0.45, 0.0][style % 3]
    for arm, paint in ((0, far),):
        s, h = p["shoulders"][arm], p["hands"][arm]
        if sleeves:
            end = (s[0] + sleeves * (h[0] - s[0]), s[1] + sleeves * (h[1] - s[1]))
            _paint(m, _capsule(s, end, 2.6), paint)
    y0, y1, x0, x1 = p["torso"]
    _paint(m, _rect(y0, y1 - 3, x0, x1), 1)
    if style % 3 == 2:  # striped tunic
        _paint(m, _rect(y0, y1 - 3, x0, x1) & ((_YY.astype(int) // 2) % 2 == 0), 3)
    else:
        _paint(m, _rect(y0, y0 + 2, x0 + 3, x1 - 3), 3)  # collar
    s, h = p["shoulders"][1], p["hands"][1]
    if sleeves:
        end = (s[0] + sleeves * (h[0] - s[0]), s[1] + sleeves * (h[1] - s[1]))
        _paint(m, _capsule(s, end, 2.6), 1)
    return m


def _hair(p, style, view):
    m = np.zeros((SIZE, SIZE), np.uint8)
    hy, hx = p["head"]
    back = 1.0 if view == "side" else 0.0  # the back of the head is towards +x in profile
    cap = _ellipse((hy - 1, hx + back), 7.6, 7.4) & (_YY < hy - 1.5)
    if style == 0:  # short crop
        _paint(m, cap, 1)
    elif style == 1:  # long hair down to the shoulders, framing the face (it stays visible)
        hair = _rect(hy - 2, hy + 9, hx - 7 + 5 * back, hx + 7.5)
        _paint(m, hair & (np.abs(_XX - hx) >= 5.5) if view == "front" else hair, 2)
        _paint(m, cap, 1)
    elif style == 2:  # spikes
        saw = (hy - 7) - 4 * np.abs(((_XX - hx) % 4) - 2) / 2
        _paint(m, (_YY >= saw - 2) & (_YY < hy - 5) & (np.abs(_XX - hx) < 7), 1)
        _paint(m, cap, 1)
    elif style == 3:  # ponytail
        _paint(m, cap, 1)
        tail = (hy - 1, hx + 9) if view == "side" else (hy - 10, hx)
        _paint(m, _ellipse(tail, 3.0, 2.5), 2)
    elif style == 4:  # bowl cut down to the brows
        _paint(m, _ellipse((hy - 1, hx), 8.2, 8.0) & (_YY < hy - 0.8), 1)
        _paint(m, _rect(hy - 2, hy - 0.8, hx - 8, hx + 8) & _ellipse((hy, hx), 8, 8), 3)
    else:  # mohawk
        _paint(m, cap & (np.abs(_XX - hx - back) < 2.5), 1)
        _paint(m, _rect(hy - 12, hy - 6, hx - 2 + back, hx + 2 + back), 1)
    return m


def _props(p, style, view):
    """Sword and orb: drawn on top of every character in fixed colours (they belong to the action)."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    if p["sword"] is not None:
        _paint(m, _capsule(*p["sword"], 1.1), 1)
        _paint(m, _ellipse(p["sword"][0], 1.8, 1.8), 3)  # hilt
    _paint(m, _capsule(p["feet"][0], (p["feet"][0][0], p["feet"][0][1] - 2), 1.6), 2)  # shoes
    _paint(m, _capsule(p["feet"][1], (p["feet"][1][0], p["feet"][1][1] - 2), 1.6), 2)
    if p["orb"] is not None:
        c, r = p["orb"]
        _paint(m, _ellipse(c, r, r), 1)
        _paint(m, _ellipse(c, r / 2, r / 2), 3)
    return m


def _palette(mains, detail):
    """(6, 4, 3) uint8: for each attribute value, colours of paint indices 0..3."""
    mains = np.asarray(mains, np.float32)
    det = np.broadcast_to(np.asarray(detail, np.float32), mains.shape) if detail is not None else (
        0.45 * mains)
    pal = np.stack([np.zeros_like(mains), mains, 0.65 * mains, det], axis=1)
    return np.clip(pal, 0, 255).astype(np.uint8)


_LAYERS = [  # (draw function, palette); order is the compositing order
    # skin tones at least ~90 RGB units apart (version 1 had two near pairs)
    (_body, _palette([[255, 224, 189], [235, 160, 80], [175, 105, 45], [85, 50, 20],
                      [140, 140, 210], [160, 200, 120]], [20, 20, 60])),
    (_bottom, _palette([[40, 60, 150], [120, 70, 30], [30, 110, 50], [90, 90, 90],
                        [150, 30, 40], [200, 180, 120]], None)),
    (_top, _palette([[200, 40, 40], [40, 140, 200], [240, 240, 240], [60, 160, 60],
                     [230, 190, 40], [130, 60, 160]], [250, 250, 200])),
    (_hair, _palette([[20, 20, 20], [230, 200, 90], [170, 60, 20], [120, 70, 40],
                      [200, 200, 210], [60, 80, 220]], [250, 250, 250])),
    (_props, np.tile(np.array([[0, 0, 0], [190, 200, 215], [70, 45, 30], [250, 240, 120]],
                              np.uint8), (6, 1, 1))),  # steel, shoe leather, gold; fixed
]


def _layer_masks(action: int, direction: int) -> np.ndarray:
    """(n_layers, 6 styles, T, H, W) paint masks of one motion. Right is the mirror of left."""
    view = "front" if direction == 0 else "side"
    out = np.zeros((len(_LAYERS), 6, N_FRAMES, SIZE, SIZE), np.uint8)
    for t in range(N_FRAMES):
        pose = _pose(action, view, t)
        for li, (draw, _) in enumerate(_LAYERS):
            for s in range(6):
                out[li, s, t] = draw(pose, s, view)
    return out[..., ::-1] if direction == 2 else out


def _lookup_table() -> np.ndarray:
    """(256, 3) colours indexed by code = layer*24 + value*4 + paint (paint 0 is never used)."""
    lut = np.zeros((256, 3), np.uint8)
    for li, (_, pal) in enumerate(_LAYERS):
        lut[li * 24: li * 24 + 24] = pal.reshape(24, 3)
    return lut


def render(attributes: np.ndarray, motions: np.ndarray, offsets: np.ndarray | None = None):
    """Render clips (N, T, H, W, 3) uint8 for attribute rows (N, 4) and motion labels (N,)."""
    attributes = np.asarray(attributes, np.int64)
    motions = np.asarray(motions, np.int64)
    n = len(motions)
    values = np.concatenate([attributes, np.zeros((n, 1), np.int64)], axis=1)  # props: value 0
    # Composite one byte per pixel (layer, value, paint) and colour once at the end: 5x faster
    # than compositing RGB layer by layer.
    code = np.zeros((n, N_FRAMES, SIZE, SIZE), np.uint8)
    for m in np.unique(motions):
        rows = np.nonzero(motions == m)[0]
        masks = _layer_masks(m // 3, m % 3)
        out = np.zeros((len(rows), N_FRAMES, SIZE, SIZE), np.uint8)
        for li in range(len(_LAYERS)):
            v = values[rows, li]
            paint = masks[li][v]  # (n_m, T, H, W) paint indices; the style is the value
            base = (li * 24 + v * 4).astype(np.uint8)[:, None, None, None]
            np.copyto(out, paint + base, where=paint > 0)
        code[rows] = out
    if offsets is not None:
        for dx in np.unique(offsets):
            if dx:
                sel = offsets == dx
                code[sel] = np.roll(code[sel], int(dx), axis=3)
    return _lookup_table()[code]


def make_synthetic(seed: int = 423, max_offset: int = 2) -> dict[str, Split]:
    """All 11,664 synthetic clips, split by character like Sprites (1000 train / 296 test)."""
    train_chars, test_chars = split_characters(seed)
    rng = np.random.RandomState(seed)
    offsets = rng.randint(-max_offset, max_offset + 1, size=(1296, 9))
    out = {}
    for name, chars in (("train", train_chars), ("test", test_chars)):
        char = np.repeat(chars, 9)
        motion = np.tile(np.arange(9), len(chars))
        attrs = np.stack(np.unravel_index(char, (6, 6, 6, 6)), axis=1)
        assert np.array_equal(character_index(attrs), char)
        x = render(attrs, motion, offsets[char, motion])
        out[name] = Split(x=x, attributes=attrs, motion=motion, character=char)
    return out

