"""synthrooms: the embedded default dataset, small synthetic indoor scenes with exact dense labels.

Each scene is a room box with up to 3 spheres, 3 (yawed) boxes and 2 cylinders on the floor and a painting on
the far wall, seen by a jittered pinhole camera under a random directional light. Vectorised ray casting over
a chunk of scenes gives, per pixel, the first surface hit; every label is derived exactly from that hit:

- ``seg``: the surface's class (7 classes, ``CLASSES``); ``cls``: the classes present in ``seg``
- ``depth``: z-depth in metres (the ray parameter, since camera rays have unit forward component)
- ``normal``: the analytic surface normal in camera coordinates (x right, y up, z forward), facing the camera
- ``edge``: 1 where a 4-neighbour lies on another surface instance (occlusion or contact), has another class,
  or a normal more than 30 degrees apart (crease)
- ``keypoint``: Gaussian heatmap of the visible projected corners of the room and of the boxes
- ``shading``: Lambertian shading, ambient + (1 - ambient) max(0, n . l)
- ``albedo``: the reflectance, class colour x procedural 3D checker texture (3 channels)
- ``detection``: the box of each object's visible pixels (its extent, as COCO boxes its segment) and its class
  among the things (sphere, box, cylinder); an object hidden or outside the view has none
- ``instance``: each object's visible pixels, ``class * 1000 + k`` for the object of detection row k - 1 (0 where no
  object is seen, the room's surfaces); its mask's extent is the object's detection box
- the RGB image: albedo x shading + Gaussian noise

Normals follow from depth, edges from normals and classes, shading from normals: the cross-task structure the
partial-label and budget methods exploit is real here. A scene is a pure function of (seed, split, index), so
splits do not change when another split is resized; the rendered arrays are cached on disk under a hash of
the parameters.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import require
from ..tasks import (NORMAL_LOSSES, Anchors, Depth, DenseL1, Detection, Edge, Instance, MultiLabel, Normal, Segmentation,
                     Task)
from ..tasks.instance import INSTANCE_STRIDE
from .base import DATASETS, Split

GENERATOR_VERSION = 4  # 3: the detection boxes; 4: the instance maps (every earlier array unchanged)
CLASSES = ("floor", "wall", "ceiling", "painting", "sphere", "box", "cylinder")
FLOOR, WALL, CEILING, PAINTING, SPHERE, BOX, CYLINDER = range(len(CLASSES))
N_SPHERES, N_BOXES, N_CYLINDERS = 3, 3, 2
THINGS = (SPHERE, BOX, CYLINDER)  # the classes of the objects, what the detection task finds
ROOM_FACES = 6  # instance ids 0-5 are the room's faces, then the objects in THINGS' order
SPLIT_STREAM = {"train": 0, "val": 1, "test": 2, "pool": 3}
CHUNK = 32
EPS = 1e-4
FAR = 1e9


def cache_dir() -> Path:
    return Path(os.environ.get("MTLBENCH_CACHE", Path.home() / ".cache" / "mtlbench"))


# --------------------------------------------------------------------------------------- scene sampling
def sample_scene(seed: int, stream: int, index: int) -> dict[str, np.ndarray]:
    """All random parameters of one scene, drawn in a fixed order from its own generator."""
    rng = np.random.default_rng([seed, stream, index])
    u = rng.uniform
    size = np.array([u(4.0, 6.0), u(2.6, 3.2), u(5.0, 7.0)])  # room x (width), y (height), z (depth)
    half_w, half_d = size[0] / 2, size[2] / 2

    def on_floor(n: int, margin: float) -> np.ndarray:
        return np.stack([u(-half_w + margin, half_w - margin, n), np.zeros(n),
                         u(-half_d + 2.2, half_d - margin, n)], 1)

    sphere_r = u(0.25, 0.6, N_SPHERES)
    sphere_c = on_floor(N_SPHERES, 0.7)
    sphere_c[:, 1] = sphere_r
    box_half = np.stack([u(0.2, 0.6, N_BOXES), u(0.2, 0.7, N_BOXES), u(0.2, 0.6, N_BOXES)], 1)
    box_c = on_floor(N_BOXES, 0.9)
    box_c[:, 1] = box_half[:, 1]
    px = np.sort(u(-half_w + 0.3, half_w - 0.3, 2))
    py = np.sort(u(0.8, size[1] - 0.3, 2))
    elevation, azimuth = math.radians(u(35, 80)), u(0, 2 * math.pi)
    return {
        "size": size,
        "cam_pos": np.array([u(-0.3, 0.3) * half_w, u(1.2, 1.8), -half_d + u(0.3, 0.8)]),
        "cam_angles": np.radians([u(-25, 25), u(5, 25), u(-3, 3)]),  # yaw, downward pitch, roll
        "light": np.array([math.cos(elevation) * math.cos(azimuth), math.sin(elevation),
                           math.cos(elevation) * math.sin(azimuth)]),
        "ambient": np.array(u(0.2, 0.35)),
        "room_rgb": u(0.35, 0.95, (4, 3)),  # floor, wall, ceiling, painting
        "texture": np.array([u(0.25, 0.6), u(0.1, 0.3)]),  # checker size (m), contrast
        "sphere_on": u(size=N_SPHERES) < 0.6, "sphere_c": sphere_c, "sphere_r": sphere_r,
        "sphere_rgb": u(0.1, 1.0, (N_SPHERES, 3)),
        "box_on": u(size=N_BOXES) < 0.6, "box_c": box_c, "box_half": box_half,
        "box_yaw": u(0, math.pi / 2, N_BOXES), "box_rgb": u(0.1, 1.0, (N_BOXES, 3)),
        "cyl_on": u(size=N_CYLINDERS) < 0.6, "cyl_c": on_floor(N_CYLINDERS, 0.6),
        "cyl_r": u(0.15, 0.4, N_CYLINDERS), "cyl_h": u(0.4, 1.2, N_CYLINDERS),
        "cyl_rgb": u(0.1, 1.0, (N_CYLINDERS, 3)),
        "painting": np.array([px[0], px[1], py[0], py[1]]),
        "noise_seed": np.array(rng.integers(2 ** 31)),
    }


def stack_scenes(scenes: list[dict[str, np.ndarray]]) -> dict[str, Tensor]:
    return {k: torch.as_tensor(np.stack([s[k] for s in scenes])).float() if k != "noise_seed"
            else torch.as_tensor(np.stack([s[k] for s in scenes])) for k in scenes[0]}


# ---------------------------------------------------------------------------------------------- geometry
def rotation_y(angle: Tensor) -> Tensor:
    c, s, z, o = angle.cos(), angle.sin(), torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).view(*angle.shape, 3, 3)


def camera_rotation(angles: Tensor) -> Tensor:
    """Camera-to-world rotation [B, 3, 3] from (yaw, pitch down, roll)."""
    yaw, pitch, roll = angles.unbind(-1)
    c, s, z, o = pitch.cos(), pitch.sin(), torch.zeros_like(pitch), torch.ones_like(pitch)
    rx = torch.stack([o, z, z, z, c, -s, z, s, c], -1).view(-1, 3, 3)  # tilts forward (+z) downwards
    cr, sr = roll.cos(), roll.sin()
    rz = torch.stack([cr, -sr, z, sr, cr, z, z, z, o], -1).view(-1, 3, 3)
    return rotation_y(yaw) @ rx @ rz


def focal_length(width: int) -> float:
    return 0.8 * width


def camera_rays(height: int, width: int) -> Tensor:
    """Ray directions [H*W, 3] in camera coordinates with unit z, so the hit parameter is z-depth."""
    f = focal_length(width)
    v, u = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return torch.stack([(u - width / 2) / f, -(v - height / 2) / f, torch.ones_like(u)], -1).view(-1, 3)


def first_positive(t: Tensor, hit: Tensor) -> Tensor:
    return torch.where(hit & (t > EPS), t, torch.full_like(t, FAR))


def hit_room(o: Tensor, d: Tensor, size: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Exit of rays from inside the room box: (t [B,P], face axis [B,P], normal [B,P,3])."""
    lo = torch.stack([-size[:, 0] / 2, torch.zeros_like(size[:, 0]), -size[:, 2] / 2], -1)[:, None]
    hi = torch.stack([size[:, 0] / 2, size[:, 1], size[:, 2] / 2], -1)[:, None]
    bound = torch.where(d > 0, hi, lo)
    t_axis = torch.where(d.abs() > 1e-9, (bound - o[:, None]) / d, torch.full_like(d, FAR))
    t, axis = t_axis.min(-1)
    normal = -F.one_hot(axis, 3).float() * torch.sign(d.gather(-1, axis[..., None]))
    return t, axis, normal


def hit_spheres(o: Tensor, d: Tensor, centre: Tensor, radius: Tensor, on: Tensor) -> Tensor:
    """Nearest hit parameter per sphere: [B, S, P]."""
    oc = o[:, None] - centre  # [B,S,3]
    b = torch.einsum("bsk,bpk->bsp", oc, d)
    a = (d * d).sum(-1)[:, None]
    c = (oc * oc).sum(-1)[..., None] - radius[..., None] ** 2
    disc = b * b - a * c
    t = (-b - disc.clamp_min(0).sqrt()) / a
    return first_positive(t, (disc > 0) & on[..., None])


def box_frame(o: Tensor, d: Tensor, centre: Tensor, yaw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    rot = rotation_y(yaw)  # box-to-world [B,K,3,3]
    o_local = torch.einsum("bkji,bkj->bki", rot, o[:, None] - centre)
    d_local = torch.einsum("bkji,bpj->bkpi", rot, d)
    return rot, o_local, d_local


def hit_boxes(o: Tensor, d: Tensor, centre: Tensor, half: Tensor, yaw: Tensor, on: Tensor
              ) -> tuple[Tensor, Tensor]:
    """Slab test in each box's frame: (t [B,K,P], world normal of the entry face [B,K,P,3])."""
    rot, o_local, d_local = box_frame(o, d, centre, yaw)
    safe = torch.where(d_local.abs() > 1e-9, d_local, torch.full_like(d_local, 1e-9))
    t1 = (-half[:, :, None] - o_local[:, :, None]) / safe
    t2 = (half[:, :, None] - o_local[:, :, None]) / safe
    t_near, axis = torch.minimum(t1, t2).max(-1)
    t_far = torch.maximum(t1, t2).min(-1).values
    normal_local = -F.one_hot(axis, 3).float() * torch.sign(d_local.gather(-1, axis[..., None]))
    normal = torch.einsum("bkij,bkpj->bkpi", rot, normal_local)
    return first_positive(t_near, (t_near < t_far) & on[..., None]), normal


def hit_cylinders(o: Tensor, d: Tensor, centre: Tensor, radius: Tensor, height: Tensor, on: Tensor
                  ) -> tuple[Tensor, Tensor]:
    """Vertical cylinders standing on the floor: side or top cap, (t [B,C,P], is_cap [B,C,P])."""
    ox = (o[:, None, 0] - centre[..., 0])[..., None]
    oz = (o[:, None, 2] - centre[..., 2])[..., None]
    dx, dy, dz = d[:, None, :, 0], d[:, None, :, 1], d[:, None, :, 2]
    a = (dx * dx + dz * dz).clamp_min(1e-12)
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - radius[..., None] ** 2
    disc = b * b - a * c
    t_side = (-b - disc.clamp_min(0).sqrt()) / a
    y_side = o[:, None, 1, None] + t_side * dy
    side = first_positive(t_side, (disc > 0) & (y_side >= 0) & (y_side <= height[..., None]))
    t_cap = (height[..., None] - o[:, None, 1, None]) / torch.where(dy.abs() > 1e-9, dy, torch.full_like(dy, -1e-9))
    cx, cz = ox + t_cap * dx, oz + t_cap * dz
    cap = first_positive(t_cap, (dy < 0) & (cx * cx + cz * cz <= radius[..., None] ** 2))
    t = torch.minimum(side, cap)
    return torch.where(on[..., None], t, torch.full_like(t, FAR)), cap < side


def gather_object(values: Tensor, index: Tensor) -> Tensor:
    """values [B, K, C] gathered at per-pixel object index [B, P] -> [B, P, C]."""
    return values.gather(1, index[..., None].expand(-1, -1, values.shape[-1]))


# ---------------------------------------------------------------------------------------------- render
class Hits(NamedTuple):
    """Each pixel's first hit: distance ``t``, the kind of surface (0 room, 1 sphere, 2 box, 3 cylinder), the
    index of the object of each kind nearest along the ray, the room face's axis and normal, which cylinder hits
    are caps, and the 3D point."""

    t: Tensor
    kind: Tensor
    sphere: Tensor
    box: Tensor
    cylinder: Tensor
    axis: Tensor
    n_room: Tensor
    n_box_all: Tensor
    cap_all: Tensor
    point: Tensor


def first_hits(scenes: dict[str, Tensor], o: Tensor, d: Tensor) -> Hits:
    t_room, axis, n_room = hit_room(o, d, scenes["size"])
    t_sph_all = hit_spheres(o, d, scenes["sphere_c"], scenes["sphere_r"], scenes["sphere_on"].bool())
    t_box_all, n_box_all = hit_boxes(o, d, scenes["box_c"], scenes["box_half"], scenes["box_yaw"],
                                     scenes["box_on"].bool())
    t_cyl_all, cap_all = hit_cylinders(o, d, scenes["cyl_c"], scenes["cyl_r"], scenes["cyl_h"],
                                       scenes["cyl_on"].bool())
    t_sph, i_sph = t_sph_all.min(1)
    t_box, i_box = t_box_all.min(1)
    t_cyl, i_cyl = t_cyl_all.min(1)
    t, kind = torch.stack([t_room, t_sph, t_box, t_cyl], -1).min(-1)
    return Hits(t, kind, i_sph, i_box, i_cyl, axis, n_room, n_box_all, cap_all, o[:, None] + t[..., None] * d)


def world_normals(scenes: dict[str, Tensor], hits: Hits) -> Tensor:
    """The unit surface normal at each hit, in world coordinates."""
    n_sph = (hits.point - gather_object(scenes["sphere_c"], hits.sphere)) / \
        gather_object(scenes["sphere_r"][..., None], hits.sphere)
    n_box = hits.n_box_all.gather(1, hits.box[:, None, :, None].expand(-1, 1, -1, 3))[:, 0]
    radial = hits.point - gather_object(scenes["cyl_c"], hits.cylinder)
    radial = F.normalize(radial * torch.tensor([1.0, 0.0, 1.0]), dim=-1)
    is_cap = hits.cap_all.gather(1, hits.cylinder[:, None]).squeeze(1)
    n_cyl = torch.where(is_cap[..., None], torch.tensor([0.0, 1.0, 0.0]), radial)
    normal_world = torch.stack([hits.n_room, n_sph, n_box, n_cyl], 2).gather(
        2, hits.kind[..., None, None].expand(-1, -1, 1, 3))[:, :, 0]
    return F.normalize(normal_world, dim=-1)


def classes_and_instances(scenes: dict[str, Tensor], hits: Hits, d: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Each pixel's class, instance id (room faces 0-5, then objects) and the room surface's class."""
    axis, kind = hits.axis, hits.kind
    going_up = d[..., 1] > 0
    painting = scenes["painting"][:, None]
    on_far_wall = (axis == 2) & (d[..., 2] > 0)
    point = hits.point
    in_painting = on_far_wall & (point[..., 0] > painting[..., 0]) & (point[..., 0] < painting[..., 1]) \
        & (point[..., 1] > painting[..., 2]) & (point[..., 1] < painting[..., 3])
    room_class = torch.where(axis == 1, torch.where(going_up, CEILING, FLOOR),
                             torch.where(in_painting, PAINTING, WALL))
    seg = torch.stack([room_class, torch.full_like(axis, SPHERE), torch.full_like(axis, BOX),
                       torch.full_like(axis, CYLINDER)], -1).gather(-1, kind[..., None])[..., 0]
    room_face = axis * 2 + (torch.gather(d, -1, axis[..., None])[..., 0] > 0).long()
    instance = torch.stack([room_face, 6 + hits.sphere, 6 + N_SPHERES + hits.box,
                            6 + N_SPHERES + N_BOXES + hits.cylinder], -1).gather(-1, kind[..., None])[..., 0]
    return seg, instance, room_class


def appearance(scenes: dict[str, Tensor], hits: Hits, room_class: Tensor, normal_world: Tensor, height: int,
               width: int) -> tuple[Tensor, Tensor, Tensor]:
    """RGB in [0, 1] (checkered albedo, Lambertian shading, per-image seeded noise), the albedo and the shading."""
    room_rgb = scenes["room_rgb"]
    kind = hits.kind
    base = torch.stack([
        room_rgb.gather(1, room_class.clamp_max(PAINTING)[..., None].expand(-1, -1, 3)),
        gather_object(scenes["sphere_rgb"], hits.sphere), gather_object(scenes["box_rgb"], hits.box),
        gather_object(scenes["cyl_rgb"], hits.cylinder)], 2)
    base = base.gather(2, kind[..., None, None].expand(-1, -1, 1, 3))[:, :, 0]
    tile, contrast = scenes["texture"][:, 0, None, None], scenes["texture"][:, 1, None]
    checker = (torch.floor(hits.point / tile).sum(-1) % 2)
    albedo = base * (1 - contrast * checker)[..., None]
    light = scenes["light"][:, None]
    ambient = scenes["ambient"][:, None]
    shading = ambient + (1 - ambient) * (normal_world * light).sum(-1).clamp_min(0)
    generator = torch.Generator()
    noise = torch.stack([torch.randn(height * width, 3, generator=generator.manual_seed(int(s)))
                         for s in scenes["noise_seed"]])
    return (albedo * shading[..., None] + 0.02 * noise).clamp(0, 1), albedo, shading


def render(scenes: dict[str, Tensor], height: int, width: int) -> dict[str, Tensor]:
    """Render a chunk of scenes; returns image uint8 [B,3,H,W] and every task's exact label."""
    batch = scenes["size"].shape[0]
    rot = camera_rotation(scenes["cam_angles"])
    d = torch.einsum("bij,pj->bpi", rot, camera_rays(height, width))  # [B,P,3], unit camera z
    hits = first_hits(scenes, scenes["cam_pos"], d)
    normal_world = world_normals(scenes, hits)
    seg, instance, room_class = classes_and_instances(scenes, hits, d)
    rgb, albedo, shading = appearance(scenes, hits, room_class, normal_world, height, width)
    normal_cam = torch.einsum("bji,bpj->bpi", rot, normal_world)  # world -> camera: R^T n
    maps = {
        "image": (rgb * 255).round().to(torch.uint8).view(batch, height, width, 3).permute(0, 3, 1, 2),
        "seg": seg.view(batch, height, width).to(torch.int16),
        "depth": hits.t.view(batch, 1, height, width),
        "normal": normal_cam.view(batch, height, width, 3).permute(0, 3, 1, 2).contiguous(),
        "shading": shading.view(batch, 1, height, width),
        "albedo": albedo.view(batch, height, width, 3).permute(0, 3, 1, 2).contiguous(),
    }
    maps["edge"] = edges(maps["seg"].long(), instance.view(batch, height, width), maps["normal"])
    maps["keypoint"] = keypoints(scenes, rot, maps["depth"], height, width)
    maps["cls"] = class_presence(maps["seg"].long(), len(CLASSES))
    maps["detection"] = object_boxes(instance.view(batch, height, width))
    maps["instance"] = object_map(instance.view(batch, 1, height, width))
    return maps


def object_ids_and_classes() -> tuple[Tensor, Tensor]:
    """The objects' surface ids (after the room's faces) and their classes among THINGS (0-based)."""
    counts = (N_SPHERES, N_BOXES, N_CYLINDERS)
    return (torch.arange(ROOM_FACES, ROOM_FACES + sum(counts)),
            torch.repeat_interleave(torch.arange(len(THINGS)), torch.tensor(counts)))


def object_map(instance: Tensor) -> Tensor:
    """[B, 1, H, W] int16: ``class * INSTANCE_STRIDE + k`` on the pixels of the object of detection row k - 1, 0 on
    the room's surfaces (tasks/instance.py)."""
    ids, label = object_ids_and_classes()
    value = torch.cat([torch.zeros(ROOM_FACES, dtype=torch.long),
                       label * INSTANCE_STRIDE + torch.arange(1, len(ids) + 1)])
    return value[instance].to(torch.int16)


def object_boxes(instance: Tensor) -> Tensor:
    """[B, objects, 5]: per object the extent of its visible pixels (x1, y1, x2, y2, pixel edges) and its class in
    THINGS; -1 where no pixel of it is visible."""
    ids, label = object_ids_and_classes()
    label = label.float()
    pixels = instance[:, None] == ids[:, None, None]  # [B, objects, H, W]
    columns, rows = pixels.any(2), pixels.any(3)
    visible = columns.any(-1)

    def extent(line: Tensor) -> tuple[Tensor, Tensor]:
        first = line.float().argmax(-1)
        return first, line.shape[-1] - line.flip(-1).float().argmax(-1)

    (x1, x2), (y1, y2) = extent(columns), extent(rows)
    boxes = torch.stack([x1, y1, x2, y2], -1).float()
    return torch.cat([torch.where(visible[..., None], boxes, 0.0),
                      torch.where(visible, label, -1.0)[..., None]], -1)


def edges(seg: Tensor, instance: Tensor, normal: Tensor, crease_degrees: float = 30.0) -> Tensor:
    """1 where a right or lower neighbour differs in instance, class, or normal direction (both pixels)."""
    cos_limit = math.cos(math.radians(crease_degrees))

    def differs(a: slice, b: slice, c: slice, e: slice) -> Tensor:
        return (instance[:, a, b] != instance[:, c, e]) | (seg[:, a, b] != seg[:, c, e]) \
            | ((normal[:, :, a, b] * normal[:, :, c, e]).sum(1) < cos_limit)

    edge = torch.zeros_like(seg, dtype=torch.bool)
    full = slice(None)
    horizontal = differs(full, slice(None, -1), full, slice(1, None))
    vertical = differs(slice(None, -1), full, slice(1, None), full)
    edge[:, :, :-1] |= horizontal
    edge[:, :, 1:] |= horizontal
    edge[:, :-1] |= vertical
    edge[:, 1:] |= vertical
    return edge[:, None].to(torch.uint8)


def corners(scenes: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """World corners of the room and of every box [B, 8 + 8 N_BOXES, 3] and whether each exists."""
    signs = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])
    size = scenes["size"]
    room_centre = torch.stack([torch.zeros_like(size[:, 0]), size[:, 1] / 2, torch.zeros_like(size[:, 0])], -1)
    room = room_centre[:, None] + signs * (size / 2)[:, None]
    local = signs[None, None] * scenes["box_half"][:, :, None]  # [B,K,8,3]
    boxes = torch.einsum("bkij,bkcj->bkci", rotation_y(scenes["box_yaw"]), local) + scenes["box_c"][:, :, None]
    points = torch.cat([room, boxes.flatten(1, 2)], 1)
    exists = torch.cat([torch.ones(size.shape[0], 8, dtype=torch.bool),
                        scenes["box_on"].bool().repeat_interleave(8, 1)], 1)
    return points, exists


def keypoints(scenes: dict[str, Tensor], rot: Tensor, depth: Tensor, height: int, width: int) -> Tensor:
    """Gaussian heatmap (max over points) of the corners that project into the image unoccluded."""
    points, exists = corners(scenes)
    cam = torch.einsum("bji,bkj->bki", rot, points - scenes["cam_pos"][:, None])
    z = cam[..., 2].clamp_min(1e-3)
    f = focal_length(width)
    u = f * cam[..., 0] / z + width / 2 - 0.5  # pixel coordinates, centres at integers
    v = -f * cam[..., 1] / z + height / 2 - 0.5
    inside = (cam[..., 2] > 0.05) & (u > -0.5) & (u < width - 0.5) & (v > -0.5) & (v < height - 0.5)
    pixel = v.round().long().clamp(0, height - 1) * width + u.round().long().clamp(0, width - 1)
    surface = depth.flatten(1).gather(1, pixel)
    visible = exists & inside & (surface >= cam[..., 2] * 0.97)
    sigma = 1.5 * width / 128
    du2 = (torch.arange(width, dtype=torch.float32) - u[..., None]) ** 2  # [B,K,W]
    dv2 = (torch.arange(height, dtype=torch.float32) - v[..., None]) ** 2  # [B,K,H]
    dist2 = (dv2[..., :, None] + du2[..., None, :]).masked_fill(~visible[..., None, None], FAR)
    return torch.exp(-dist2.amin(1, keepdim=True) / (2 * sigma ** 2))  # max of Gaussians = Gaussian of min


def class_presence(seg: Tensor, num_classes: int) -> Tensor:
    present = torch.zeros(seg.shape[0], num_classes)
    return present.scatter_(1, seg.flatten(1), 1.0)


# ----------------------------------------------------------------------------------------------- dataset
@DATASETS.register("synthrooms")
@dataclass(frozen=True)
class SynthRooms:
    """Parameters: resolution (multiples of 32 for SegNet), split sizes, the scene seed, and the size of an
    extra ``pool`` split (scenes of their own) that the ``extended`` scenario labels for one task."""

    height: int = 96
    width: int = 128
    train: int = 800
    val: int = 100
    test: int = 200
    seed: int = 0
    pool: int = 0
    normal_loss: str = "cosine"  # or "l1", Standley et al. 2020's (tasks.Normal)

    def __post_init__(self) -> None:
        require("normal_loss", self.normal_loss, self.normal_loss in NORMAL_LOSSES,
                f"must be one of {', '.join(NORMAL_LOSSES)}")
        for side in ("height", "width"):
            require(side, getattr(self, side), getattr(self, side) >= 1, "must be >= 1 pixel")
        for split in ("train", "val", "test"):
            require(split, getattr(self, split), getattr(self, split) >= 1, "a split needs at least one image")
        require("pool", self.pool, self.pool >= 0, "must be >= 0")

    def tasks(self) -> dict[str, Task]:
        return {"seg": Segmentation("seg", len(CLASSES)), "depth": Depth("depth", 1),
                "normal": Normal("normal", 3, loss=self.normal_loss), "edge": Edge("edge", 1),
                "keypoint": DenseL1("keypoint", 1),
                "shading": DenseL1("shading", 1), "albedo": DenseL1("albedo", 3),
                "cls": MultiLabel("cls", len(CLASSES)), "detection": self.detection(),
                "instance": Instance("instance", len(THINGS))}

    def detection(self) -> Detection:
        """Boxes of 8 to 100 pixels at the default resolution take anchors of levels 2 to 5 at twice the cell's
        size; the head is CPU-sized (EfficientDet-D0's at half its width, two repeats)."""
        return Detection("detection", len(THINGS), anchors=Anchors(min_level=2, max_level=5, size=2.0),
                         image_size=(self.height, self.width), fpn_channels=32, fpn_repeats=2, head_repeats=2)

    def split_size(self, split: str) -> int:
        return getattr(self, split)

    def load(self, split: str) -> Split:
        arrays = self.cached(split)
        images = torch.from_numpy(arrays.pop("image"))
        return Split(images, {k: torch.from_numpy(v) for k, v in arrays.items()})

    def cache_key(self, split: str, n: int) -> str:
        text = json.dumps({"version": GENERATOR_VERSION, "height": self.height, "width": self.width,
                           "seed": self.seed, "split": split, "n": n}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cached(self, split: str) -> dict[str, np.ndarray]:
        """The split's arrays, always as read from the cache file: the run that renders them reads them back too,
        so that it trains on arrays laid out exactly as every later run's (a freshly rendered array may have
        other strides, and the kernels' summation order, so the results' last digits, would differ)."""
        n = self.split_size(split)
        path = cache_dir() / f"synthrooms-{split}-{self.cache_key(split, n)}.npz"
        if not path.exists():
            arrays = self.load_rows(split, 0, n)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        with np.load(path) as stored:
            return dict(stored)

    def load_rows(self, split: str, start: int, stop: int) -> dict[str, np.ndarray]:
        """Images ``start`` to ``stop`` of the split and their targets, as ``load`` gives them, without rendering or
        holding the rest (``mtlbench data prepare`` of a set larger than memory): rendered in the chunks of ``CHUNK``
        scenes the whole split is rendered in (the same batches, so the same values to the last bit)."""
        size = self.split_size(split)
        stream, parts, stop = SPLIT_STREAM[split], [], min(stop, size)
        for first in range(start - start % CHUNK, stop, CHUNK):
            scenes = stack_scenes([sample_scene(self.seed, stream, i) for i in range(first, min(first + CHUNK, size))])
            kept = slice(max(start - first, 0), stop - first)
            parts.append({k: v[kept] for k, v in render(scenes, self.height, self.width).items()})
        return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]} if parts else {}


