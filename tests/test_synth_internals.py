"""SynthPose fast paths against direct computations: kinematics, closed-form crop, index streams, occlusion."""

import math

import numpy as np
import pytest

from posereg.data.synth import body as B
from posereg.data.synth import render as R
from posereg.data.synth.crop import SimilarityCrop
from posereg.data.synth.poses import ANGLE_NAMES, angles_dict, sample_angles
from posereg.data.synth.rng import IndexedStreams
from posereg.geometry import affine_scale, crop_camera, crop_points_transform, crop_transform, invert_affine

DOWN, UP = np.array([0.0, -1.0, 0.0]), np.array([0.0, 1.0, 0.0])


def _subject(seed: int = 0) -> B.Subject:
    return B.sample_subject(np.random.default_rng(seed), B.BodyConfig())


def test_rest_pose_is_straight_and_yaw_turns_the_body():
    s = _subject()
    b = s.bones
    rest = B.forward_kinematics(s, np.zeros(len(ANGLE_NAMES)))
    J = rest.joints
    assert np.allclose(J[B.R_KNEE] - J[B.R_HIP], [0.0, -b["thigh"], 0.0])
    assert np.allclose(J[B.L_ANKLE] - J[B.L_KNEE], [0.0, -b["shin"], 0.0])
    assert np.allclose(J[B.NECK], [0.0, b["lower_spine"] + b["upper_spine"], 0.0])
    assert np.allclose(J[B.R_ELB] - J[B.R_SHO], [0.0, -b["upper_arm"], 0.0])
    assert np.allclose(J[B.L_HIP], -J[B.R_HIP] * [1, -1, -1])  # mirror images in x
    assert np.allclose(J[B.THORAX], (J[B.L_SHO] + J[B.R_SHO]) / 2)
    # the toes point forward and 10 degrees down: rot_x(-80) applied to straight down
    toe = rest.toes[0] - J[B.R_ANKLE]
    assert np.allclose(toe, s.radii["foot_length"] * np.array([0.0, -math.cos(math.radians(80)),
                                                                 math.sin(math.radians(80))]))
    # head centre / face centre / chest front of the renderer
    assert np.allclose(rest.points[B.FACE_C] - rest.points[B.HEAD_C], [0.0, 0.0, 0.55 * s.radii["head"]])
    # a 90 degree yaw turns the left side (+x) to face -z
    a = np.zeros(len(ANGLE_NAMES))
    a[ANGLE_NAMES.index("yaw")] = 90.0
    turned = B.forward_kinematics(s, a).joints
    assert np.allclose(turned[B.L_HIP], [0.0, J[B.L_HIP, 1], -J[B.L_HIP, 0]], atol=1e-9)


def test_kinematics_equal_the_explicit_chain_of_rotations():
    s = _subject(3)
    b = s.bones
    for seed in range(20):
        _, v = sample_angles(np.random.default_rng(seed))
        a = angles_dict(v)
        posed = B.forward_kinematics(s, a)
        assert np.array_equal(posed.joints, B.forward_kinematics(s, v).joints)  # dict and vector agree
        # left arm, rotation by rotation
        R0 = B.rot_y(a["yaw"]) @ B.rot_x(a["pitch"]) @ B.rot_z(a["roll"])
        Rc = R0 @ B.rot_y(a["spine_twist"]) @ B.rot_z(a["spine_lat"]) @ B.rot_x(a["spine_bend"])
        Rc = Rc @ B.rot_x(a["chest_bend"])
        neck = R0 @ B.rot_y(a["spine_twist"]) @ B.rot_z(a["spine_lat"]) @ B.rot_x(a["spine_bend"]) @ UP \
            * b["lower_spine"] + Rc @ UP * b["upper_spine"]
        sho_dir = np.array([1.0, -0.17, 0.0]) / np.linalg.norm([1.0, -0.17, 0.0])
        sho = neck + Rc @ sho_dir * b["shoulder"]
        Ra = Rc @ B.rot_z(a["l_sho_abd"]) @ B.rot_x(-a["l_sho_flex"]) @ B.rot_y(a["l_sho_rot"])
        elb = sho + Ra @ DOWN * b["upper_arm"]
        wri = elb + Ra @ B.rot_x(-a["l_elbow"]) @ DOWN * b["forearm"]
        assert np.allclose(posed.joints[[B.NECK, B.L_SHO, B.L_ELB, B.L_WRI]], [neck, sho, elb, wri], atol=1e-9)
        # right leg
        Rh = R0 @ B.rot_z(-a["r_hip_abd"]) @ B.rot_x(-a["r_hip_flex"]) @ B.rot_y(-a["r_hip_rot"])
        knee = posed.joints[B.R_HIP] + Rh @ DOWN * b["thigh"]
        ankle = knee + Rh @ B.rot_x(a["r_knee"]) @ DOWN * b["shin"]
        assert np.allclose(posed.joints[[B.R_KNEE, B.R_ANKLE]], [knee, ankle], atol=1e-9)


@pytest.mark.parametrize("flip", [False, True])
def test_closed_form_crop_equals_the_geometry_module(flip):
    rng = np.random.default_rng(1)
    K = np.array([1150.0, 1150.0, 503.0, 497.0])
    for _ in range(20):
        center, size, rot = rng.uniform(200, 800, 2), float(rng.uniform(100, 600)), float(rng.uniform(-40, 40))
        crop = SimilarityCrop.make(center, size, 128, rot, flip)
        A = crop_transform(center, size, 128, rot, flip)
        assert np.allclose(crop.A, A, atol=1e-12)
        assert np.allclose(crop.crop_to_image, invert_affine(A), atol=1e-9)
        assert np.allclose(crop.M, crop_points_transform(A), atol=1e-12)
        assert np.allclose(crop.camera(K), crop_camera(K, A), atol=1e-9)
        assert crop.scale == pytest.approx(affine_scale(A), rel=1e-12)
        pts = rng.uniform(0, 1000, (5, 2))
        assert np.allclose(crop.points_2d(pts), pts @ A[:, :2].T + A[:, 2], atol=1e-9)


def test_indexed_streams_depend_on_the_index_only():
    ss = np.random.SeedSequence(entropy=3, spawn_key=(1, 2))
    s, twin = IndexedStreams(ss), IndexedStreams(ss)
    first = s(5).random(8)
    s(6).random(100)  # another sample in between changes nothing
    assert np.array_equal(s(5).random(8), first)
    assert np.array_equal(twin(5).random(8), first)
    assert not np.array_equal(s(6).random(8), first)
    assert not np.array_equal(IndexedStreams(np.random.SeedSequence(entropy=4, spawn_key=(1, 2)))(5).random(8), first)
    # scalar draws are served from the block in a fixed order too
    r1, r2 = s(9), None
    a = [r1.uniform(0, 1), r1.normal(), r1.integers(10)]
    r2 = s(9)
    assert [r2.uniform(0, 1), r2.normal(), r2.integers(10)] == a


def _capsule(p, q, radius, depth, joints=(), owner=0):
    pts = np.array([p, q, q, q], dtype=np.float64)
    mask = np.zeros((1, B.NUM_JOINTS), dtype=bool)
    mask[0, list(joints)] = True
    return R.Parts(depth=np.array([depth]), kind=np.array([R.CAPSULE]), pts=pts[None], radius=np.array([radius]),
                   colour=np.array([[200, 10, 10]]), joints=mask, owner=np.array([owner]))


def test_occlusion_of_a_hand_built_scene():
    uv = np.full((B.NUM_JOINTS, 2), 100.0)
    uv[B.L_WRI], uv[B.R_WRI], uv[B.HEAD] = (20.0, 20.0), (23.0, 20.0), (50.0, 52.0)
    z = np.full(B.NUM_JOINTS, 5000.0)
    bar = ((10.0, 21.0), (40.0, 21.0))  # passes 1 px from both wrists, 2 px thick
    front = R.Parts.concat([_capsule(*bar, 2.0, 4000.0, joints=(B.R_WRI,)),  # the right wrist's own part
                            _capsule(*bar, 2.0, 4000.0, owner=1)])  # another person's part
    occ = R.occluded_joints(uv, z, front)
    assert occ[B.L_WRI] and occ[B.R_WRI] and occ.sum() == 2  # the other person's bar covers both
    own_only = R.occluded_joints(uv, z, _capsule(*bar, 2.0, 4000.0, joints=(B.R_WRI,)))
    assert own_only[B.L_WRI] and not own_only[B.R_WRI]
    assert not R.occluded_joints(uv, z, _capsule(*bar, 2.0, 4980.0, owner=1)).any()  # within the 30 mm margin
    assert not R.occluded_joints(uv, z, _capsule(*bar, 0.9, 4000.0, owner=1)).any()  # too thin
    quad = R.Parts(depth=np.array([4000.0]), kind=np.array([R.QUAD]),
                   pts=np.array([[[40.0, 40.0], [60.0, 45.0], [58.0, 60.0], [42.0, 58.0]]]), radius=np.array([3.0]),
                   colour=np.array([[1, 2, 3]]), joints=np.zeros((1, B.NUM_JOINTS), dtype=bool), owner=np.array([1]))
    assert np.flatnonzero(R.occluded_joints(uv, z, quad)).tolist() == [B.HEAD]


def test_parts_are_drawn_back_to_front():
    img = np.zeros((64, 64, 3), np.uint8)
    near = _capsule((20.0, 32.0), (44.0, 32.0), 6.0, 3000.0)
    far = _capsule((32.0, 10.0), (32.0, 54.0), 6.0, 6000.0)
    far.colour[:] = (10, 200, 10)
    order = R.draw_parts(img, R.Parts.concat([near, far]))
    assert order.tolist() == [1, 0]
    # where they cross, the near bar (base colour, highlight above its axis) covers the far one
    assert tuple(img[35, 33]) == (200, 10, 10) and tuple(img[30, 33]) == (244, 12, 12)
    assert tuple(img[12, 34]) == (10, 200, 10)
