"""Masks: label colours, region matching between content and style masks, resizing per layer."""
import numpy as np
import pytest
from PIL import Image

from nst_tf import backbones, masks
from nst_tf.errors import UserError

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def label_png(path, rows, scale=4):
    """A mask file from rows of colours, each cell `scale` pixels square."""
    arr = np.array(rows, np.uint8).repeat(scale, 0).repeat(scale, 1)
    Image.fromarray(arr).save(path)
    return str(path)


def test_labels_snap_edge_and_noise_pixels_to_the_nearest_label(tmp_path):
    arr = np.zeros((40, 40, 3), np.uint8)
    arr[:, :20] = RED
    arr[:, 20:] = BLUE
    arr[5, 5] = (250, 3, 2)            # JPEG-like noise inside red
    path = str(tmp_path / "m.png")
    Image.fromarray(arr).save(path)
    colours, index = masks.load_labels(path, (40, 40))
    assert sorted(map(tuple, colours)) == [BLUE, RED]
    red = [tuple(c) for c in colours].index(RED)
    assert (index[:, :20] == red).all() and (index[:, 20:] != red).all()


def test_too_many_colours_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / "photo.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    with pytest.raises(UserError, match="at most 16 flat label colours"):
        masks.load_labels(path, (64, 64))


def test_mask_with_another_aspect_ratio_is_refused(tmp_path):
    path = label_png(tmp_path / "m.png", [[RED, BLUE]])   # 8x4: 2:1
    with pytest.raises(UserError, match="aspect ratio"):
        masks.load_labels(path, (8, 8))


def test_guides_match_regions_by_colour(tmp_path):
    content = label_png(tmp_path / "c.png", [[RED, BLUE], [RED, BLUE]])
    style = label_png(tmp_path / "s.png", [[BLUE, BLUE], [RED, BLUE]])
    guides = masks.load_guides(content, (style, "#0000ff"), (8, 8), [(8, 8), (4, 6)])
    k_red, k_blue = guides.colours.index("#ff0000"), guides.colours.index("#0000ff")
    assert guides.content.shape == (2, 8, 8)
    np.testing.assert_array_equal(guides.content.sum(0), 1)   # every content pixel in one region
    assert guides.styles[0][k_red].sum() == 16 and guides.styles[0][k_blue].sum() == 48
    assert guides.styles[1][k_blue].all() and not guides.styles[1][k_red].any()   # a colour: the whole image
    assert guides.styled.all()


def test_content_region_without_style_is_unstyled(tmp_path):
    content = label_png(tmp_path / "c.png", [[RED, GREEN]])
    guides = masks.load_guides(content, ("#ff0000",), (4, 8), [(4, 4)])
    assert guides.styled.tolist() == [c == "#ff0000" for c in guides.colours]


def test_style_colour_missing_from_the_content_mask_is_refused(tmp_path):
    content = label_png(tmp_path / "c.png", [[RED, BLUE]])
    style = label_png(tmp_path / "s.png", [[RED, GREEN]])
    with pytest.raises(UserError, match="#00ff00 that --content_mask lacks"):
        masks.load_guides(content, (style,), (4, 8), [(4, 8)])
    with pytest.raises(UserError, match="is not a region of --content_mask"):
        masks.load_guides(content, ("#00ff00",), (4, 8), [(4, 8)])
    with pytest.raises(UserError, match="not a colour"):
        masks.load_guides(content, ("#zzzzzz",), (4, 8), [(4, 8)])


def test_resize_to_averages_areas():
    m = np.zeros((1, 4, 4), np.float32)
    m[0, :2, :3] = 1
    out = masks.resize_to(m, (2, 2)).numpy()
    np.testing.assert_allclose(out[0], [[1.0, 0.5], [0.0, 0.0]])


def test_resize_to_equals_pooling_the_mask_through_vgg():
    """Area resizing gives what VGG's 2x2 average pools do to the mask, at every style layer's size."""
    import tensorflow as tf
    rng = np.random.default_rng(0)
    m = (rng.uniform(size=(1, 32, 48)) > 0.5).astype(np.float32)
    model = backbones.load_backbone("vgg16_hed", weights="random", seed=0)
    extractor = backbones.build_extractor(model, ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"))
    shapes = {k: v.shape[1:3] for k, v in extractor(tf.zeros([1, 32, 48, 3])).items()}
    pooled = m[0]
    for name in ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"):
        if name != "conv1_1":   # one 2x2 average pool before each block
            pooled = pooled.reshape(pooled.shape[0] // 2, 2, pooled.shape[1] // 2, 2).mean(axis=(1, 3))
        assert pooled.shape == tuple(shapes[name])
        np.testing.assert_allclose(masks.resize_to(m, shapes[name]).numpy()[0], pooled, atol=1e-6)


def test_guides_resized_keep_labels():
    g = masks.Guides(np.eye(2, dtype=np.float32)[:, None, :].repeat(4, 1).repeat(4, 2)[:, :, :8],
                     [np.ones((2, 6, 6), np.float32)], ["#ff0000", "#0000ff"])
    small = g.resized((2, 4), [(3, 3)])
    assert small.content.shape == (2, 2, 4) and set(np.unique(small.content)) <= {0.0, 1.0}
    assert small.styles[0].shape == (2, 3, 3)


def test_detail_regions_split_each_image_into_its_calm_and_busy_halves():
    """Left half flat, right half a noisy texture: the right is the busy region (1), and the split is at the
    median whatever the image's contrast, so a faint texture splits like a strong one."""
    image = np.full((40, 60, 3), 0.5, np.float32)
    image[:, 30:] += np.random.default_rng(0).uniform(-0.3, 0.3, size=(40, 30, 1)).astype(np.float32)
    index = masks.detail_index(image)
    assert index[:, :25].max() == 0 and index[:, 35:].mean() > 0.99 and 0.45 <= index.mean() <= 0.55
    faint = 0.5 + 0.1 * (image - 0.5)
    assert np.mean(masks.detail_index(faint) == index) > 0.99   # equal but for float rounding at the median
    assert masks.detail_index(np.full((20, 20, 3), 0.3, np.float32)).max() == 0   # flat: all calm
    guides = masks.detail_guides(image, [image[:, ::-1], image[:30]])
    assert guides.colours == masks.DETAIL_COLOURS and guides.content.shape == (2, 40, 60)
    np.testing.assert_array_equal(guides.content[1], index)
    np.testing.assert_array_equal(guides.styles[0][1], index[:, ::-1])   # the busy half follows the texture
    assert guides.styles[1].shape == (2, 30, 60) and guides.present.all()
