"""Loss math against values computed by hand, eagerly and inside tf.function."""
import numpy as np
import pytest
import tensorflow as tf

from nst_tf import losses

# One image, 2x2 positions (M = 4), 2 channels (N = 2).
F = np.array([[[[1.0, 0.0], [2.0, 1.0]], [[0.0, 3.0], [1.0, 1.0]]]], np.float32)
# F as channels x positions: c0 = [1, 2, 0, 1], c1 = [0, 1, 3, 1]
# G = [[1+4+0+1, 0+2+0+1], [3, 0+1+9+1]] = [[6, 3], [3, 11]];  g = G / M = [[1.5, .75], [.75, 2.75]]
G_OVER_M = np.array([[[1.5, 0.75], [0.75, 2.75]]], np.float32)


def both(fn, *args):
    """fn's result eagerly and compiled; the test checks both."""
    return fn(*args).numpy(), tf.function(fn)(*args).numpy()


def test_gram_matrix_is_gram_over_positions():
    for value in both(losses.gram_matrix, tf.constant(F)):
        np.testing.assert_allclose(value, G_OVER_M, rtol=1e-6)


def test_gram_gradient_by_hand():
    # d/dF <D, G> with G = F^T F (positions k, channels i, j): dF_ki = sum_j F_kj (D_ij + D_ji).
    # D = [[1, 2], [0, -1]], D + D^T = [[2, 2], [2, -2]]; F rows (positions) [1,0] [2,1] [0,3] [1,1]:
    # [1,0] -> [2, 2]; [2,1] -> [6, 2]; [0,3] -> [6, -6]; [1,1] -> [4, 0].
    upstream = tf.constant([[[1.0, 2.0], [0.0, -1.0]]])
    expected = np.array([[[[2, 2], [6, 2]], [[6, -6], [4, 0]]]], np.float32)

    def grad(features):
        with tf.GradientTape() as tape:
            tape.watch(features)
            value = tf.reduce_sum(upstream * losses.gram_sum(features))
        return tape.gradient(value, features)
    for value in both(grad, tf.constant(F)):
        np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_content_l2_is_half_sum_of_squares():
    target = np.zeros_like(F)
    # F = [1, 0, 2, 1, 0, 3, 1, 1]: 1/2 * (1 + 0 + 4 + 1 + 0 + 9 + 1 + 1) = 8.5
    for value in both(lambda a, b: losses.content_loss(a, b, "l2"), tf.constant(F), tf.constant(target)):
        np.testing.assert_allclose(value, [8.5], rtol=1e-6)


def test_content_l1_is_sum_of_abs():
    target = np.ones_like(F)
    # |F - 1| = [0,1,1,0, 1,2,0,0] -> 5
    for value in both(lambda a, b: losses.content_loss(a, b, "l1"), tf.constant(F), tf.constant(target)):
        np.testing.assert_allclose(value, [5.0], rtol=1e-6)


@pytest.mark.parametrize("norm, expected", [
    # sum (g - a)^2 with a = 0: 1.5^2 + 2 * .75^2 + 2.75^2 = 2.25 + 1.125 + 7.5625 = 10.9375; N^2 = 4
    ("paper", 10.9375 / (4 * 4)),      # 1/(4 N^2 M^2) sum (G - A)^2 = 1/(4 N^2) sum (g - a)^2
    ("positions", 10.9375 / 4),        # mean over N^2 of (G/M - A/M)^2
    ("elements", 10.9375 / 4 / 4),     # mean over N^2 of (G/(NM) - A/(NM))^2
])
def test_style_layer_loss_normalizations(norm, expected):
    g = tf.constant(G_OVER_M)
    a = tf.zeros_like(g)
    for value in both(lambda x, y: losses.style_layer_loss(x, y, norm), g, a):
        np.testing.assert_allclose(value, [expected], rtol=1e-6)


def test_style_paper_matches_unnormalized_formula():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(1, 3, 5, 4)).astype(np.float32)
    p = rng.normal(size=(1, 3, 5, 4)).astype(np.float32)
    n, m = 4, 15
    G = np.einsum("bhwi,bhwj->bij", f, f)
    A = np.einsum("bhwi,bhwj->bij", p, p)
    expected = ((G - A) ** 2).sum() / (4 * n**2 * m**2)
    value = losses.style_layer_loss(losses.gram_matrix(f), losses.gram_matrix(p), "paper")
    np.testing.assert_allclose(value.numpy(), [expected], rtol=1e-5)


def test_style_compares_images_of_different_sizes():
    """A texture and a tiled copy of it have the same normalized Gram matrix: no style loss."""
    rng = np.random.default_rng(1)
    tile = rng.uniform(size=(1, 4, 4, 3)).astype(np.float32)
    tiled = np.tile(tile, (1, 2, 3, 1))
    value = losses.style_layer_loss(losses.gram_matrix(tiled), losses.gram_matrix(tile))
    np.testing.assert_allclose(value.numpy(), [0.0], atol=1e-7)


def test_total_variation_of_checkerboard():
    # A 4x4 one-channel checkerboard of 0/1 in all 3 channels: every neighbour pair differs by 1.
    board = (np.indices((4, 4)).sum(0) % 2).astype(np.float32)
    images = np.repeat(board[None, :, :, None], 3, axis=-1)
    # vertical pairs 3*4 + horizontal pairs 4*3 = 24 per channel, 3 channels -> 72
    for value in both(losses.total_variation, tf.constant(images)):
        np.testing.assert_allclose(value, [72.0])


def test_total_variation_of_constant_and_ramp():
    flat = np.full((1, 5, 5, 3), 0.3, np.float32)
    assert losses.total_variation(tf.constant(flat)).numpy()[0] == 0.0
    ramp = np.tile(np.linspace(0, 1, 5, dtype=np.float32)[None, None, :, None], (1, 5, 1, 3))
    # horizontal steps of 0.25: 5 rows * 4 pairs * 3 channels * 0.0625 = 3.75
    np.testing.assert_allclose(losses.total_variation(tf.constant(ramp)).numpy(), [3.75], rtol=1e-6)


def test_losses_are_per_image():
    batch = np.concatenate([F, 2 * F])
    target = np.zeros_like(F)
    np.testing.assert_allclose(losses.content_loss(batch, target).numpy(), [8.5, 34.0], rtol=1e-6)
    g = losses.gram_matrix(batch)
    np.testing.assert_allclose(g[1].numpy(), 4 * G_OVER_M[0], rtol=1e-6)


def test_unknown_kinds_raise():
    with pytest.raises(ValueError):
        losses.content_loss(F, F, "l3")
    with pytest.raises(ValueError):
        losses.style_layer_loss(G_OVER_M, G_OVER_M, "bogus")


def test_softmax_features_by_hand():
    # One image, one position, two channels: softmax(0, ln 3) = (1/4, 3/4), times N*M = 2.
    f = tf.constant([[[[0.0, np.log(3.0)]]]])
    for fn in (losses.softmax_features, tf.function(losses.softmax_features)):
        np.testing.assert_allclose(fn(f).numpy().ravel(), [0.5, 1.5], rtol=1e-6)


def test_softmax_features_per_image_mean_one_and_shift_invariant():
    f = tf.random.normal((3, 4, 5, 6), seed=1) * 5
    s = losses.softmax_features(f)
    np.testing.assert_allclose(tf.reduce_mean(s, axis=[1, 2, 3]).numpy(), 1.0, rtol=1e-5)
    assert float(tf.reduce_min(s)) > 0
    np.testing.assert_allclose(losses.softmax_features(f + 100.0).numpy(), s.numpy(), rtol=1e-4)
    # Each image is normalized on its own: the batch does not mix.
    np.testing.assert_allclose(losses.softmax_features(f[1:2]).numpy(), s[1:2].numpy(), rtol=1e-5)
    # The temperature divides the features: T = 2 on F is T = 1 on F / 2.
    np.testing.assert_allclose(losses.softmax_features(f, 2.0).numpy(), losses.softmax_features(f / 2).numpy(),
                               rtol=1e-5)


def test_masked_gram_by_hand():
    f = tf.constant([[[[1.0, 2.0], [3.0, 0.0]], [[0.0, 1.0], [2.0, 2.0]]]])   # [1, 2, 2, 2]
    m = tf.constant([[[1.0, 0.0], [0.0, 1.0]],                                # region 0: two corners
                     [[0.0, 0.5], [0.0, 0.0]]])                               # region 1: half a pixel
    g = losses.masked_gram(f, m).numpy()
    # region 0: (F(0,0) F(0,0)^T + F(1,1) F(1,1)^T) / 2 with F(0,0) = (1, 2), F(1,1) = (2, 2)
    np.testing.assert_allclose(g[0, 0], [[(1 + 4) / 2, (2 + 4) / 2], [(2 + 4) / 2, (4 + 4) / 2]])
    # region 1: 0.5 * F(0,1) F(0,1)^T / 0.5 with F(0,1) = (3, 0)
    np.testing.assert_allclose(g[0, 1], [[9, 0], [0, 0]])


def test_masked_gram_of_all_ones_is_the_gram_matrix():
    f = tf.random.stateless_normal([2, 5, 7, 4], seed=[1, 2])
    g = losses.masked_gram(f, tf.ones([1, 5, 7]))
    np.testing.assert_allclose(g[:, 0].numpy(), losses.gram_matrix(f).numpy(), rtol=1e-5)
    compiled = tf.function(losses.masked_gram)(f, tf.ones([1, 5, 7]))
    np.testing.assert_allclose(compiled.numpy(), g.numpy(), rtol=1e-6)


def test_style_layer_loss_per_region():
    gram = tf.random.stateless_normal([2, 3, 4, 4], seed=[3, 4])
    target = tf.random.stateless_normal([1, 3, 4, 4], seed=[5, 6])
    per_region = losses.style_layer_loss(gram, target, "elements")
    assert per_region.shape == (2, 3)
    np.testing.assert_allclose(per_region[:, 1].numpy(),
                               losses.style_layer_loss(gram[:, 1], target[:, 1], "elements").numpy(), rtol=1e-6)


def test_relative_content_loss_by_hand():
    # F - P = [1, 0] -> sum (F-P)^2 = 1; sum P^2 = 0 + 4 = 4 -> 0.25 (l2); l1: 1 / 2 = 0.5
    f = np.array([[[[1.0, 2.0]]]], np.float32)
    p = np.array([[[[0.0, 2.0]]]], np.float32)
    for got in both(lambda a, b: losses.relative_content_loss(a, b, "l2"), f, p):
        np.testing.assert_allclose(got, [0.25], rtol=1e-6)
    for got in both(lambda a, b: losses.relative_content_loss(a, b, "l1"), f, p):
        np.testing.assert_allclose(got, [0.5], rtol=1e-6)


def test_relative_style_loss_by_hand_and_scale_free():
    # g - a = [[-1, 0], [0, 1]] -> 2; sum a^2 = 4 -> 0.5; scaling both by any s leaves it at 0.5
    g = np.array([[[1.0, 0.0], [0.0, 1.0]]], np.float32)
    a = np.array([[[2.0, 0.0], [0.0, 0.0]]], np.float32)
    for got in both(losses.relative_style_loss, g, a):
        np.testing.assert_allclose(got, [0.5], rtol=1e-6)
    np.testing.assert_allclose(losses.relative_style_loss(1e4 * g, 1e4 * a).numpy(), [0.5], rtol=1e-5)


def test_mean_total_variation_by_hand():
    # 2x2, every channel [[0, 1], [0, 1]]: vertical differences 0, horizontal 1 and 1 -> TV = 2 per channel,
    # 6 in all, over 3 * (1 * 2 + 2 * 1) = 12 pairs -> 0.5
    x = np.repeat(np.array([[[0.0], [1.0]], [[0.0], [1.0]]], np.float32)[None], 3, axis=-1)
    for got in both(losses.mean_total_variation, x):
        np.testing.assert_allclose(got, [0.5], rtol=1e-6)


def stats_of(values):
    """`gram_matrix(with_ones(F))` of one image whose single channel takes `values` at its positions."""
    f = np.asarray(values, np.float32).reshape(1, 1, -1, 1)
    return losses.gram_matrix(losses.with_ones(tf.constant(f)))


def test_moments_from_the_gram_with_ones():
    mean, cov = losses.moments(stats_of([1.0, 3.0]))   # mu = 2, E[F^2] = 5, var = 5 - 4 = 1
    np.testing.assert_allclose(mean.numpy(), [[2.0]])
    np.testing.assert_allclose(cov.numpy(), [[[1.0]]])


def test_style_statistics_by_hand():
    image, target = stats_of([1.0, 3.0]), stats_of([2.0, 4.0])   # mu 2, sigma 1; mu' 3, sigma' 1
    # mean_std and wasserstein (1-D: W2^2 = (mu - mu')^2 + (sigma - sigma')^2): 1 + 0, over C = 1
    for kind in ("mean_std", "wasserstein"):
        np.testing.assert_allclose(losses.style_statistics_loss(image, target, kind).numpy(), [1.0], rtol=1e-3)
    # mean_cov: (2 - 3)^2 / 1 + (1 - 1)^2 / 1 = 1
    np.testing.assert_allclose(losses.style_statistics_loss(image, target, "mean_cov").numpy(), [1.0], rtol=1e-5)
    # relative: W2^2 / (mu'^2 + var') = 1 / (9 + 1)
    np.testing.assert_allclose(losses.style_statistics_loss(image, target, "wasserstein", True).numpy(), [0.1],
                               rtol=1e-3)


def test_newton_schulz_square_root():
    a = np.array([[4.0, 1.0], [1.0, 3.0]], np.float32)
    w, v = np.linalg.eigh(a)
    want = v @ np.diag(np.sqrt(w)) @ v.T
    np.testing.assert_allclose(losses.sqrtm_newton_schulz(tf.constant(a)).numpy(), want, rtol=1e-4)


# MRF (Li & Wand 2016), 1 channel. A style map whose two 3x3 patches are a column of ones on the left (A)
# and on the right (B):  1 0 0 1 / 1 0 0 1 / 1 0 0 1.
MRF_STYLE = np.array([[1, 0, 0, 1]] * 3, np.float32)[None, :, :, None]
PATCH_A = np.array([1, 0, 0] * 3, np.float32)
PATCH_B = np.array([0, 0, 1] * 3, np.float32)


def test_mrf_target_is_the_style_patches_and_a_stride_keeps_at_most_max_patches():
    np.testing.assert_array_equal(losses.mrf_target([tf.constant(MRF_STYLE)], [1.0]).numpy(), [PATCH_A, PATCH_B])
    wide = tf.constant(np.arange(7 * 9, dtype=np.float32).reshape(1, 7, 9, 1))   # 5 x 7 = 35 patches
    assert losses.mrf_target([wide], [1.0]).shape == (35, 9)
    sampled = losses.mrf_target([wide], [1.0], max_patches=12)   # stride 2: 3 x 4
    assert sampled.shape == (12, 9)
    np.testing.assert_array_equal(sampled[1].numpy(), losses.mrf_target([wide[:, :3, 2:5]], [1.0])[0].numpy())
    # a style with blend weight 0 gives no patches; the others are pooled
    assert losses.mrf_target([tf.constant(MRF_STYLE), wide], [1.0, 0.0]).shape == (2, 9)
    assert losses.mrf_target([tf.constant(MRF_STYLE), wide], [0.5, 0.5]).shape == (37, 9)


def test_mrf_loss_matches_each_patch_by_normalized_cross_correlation():
    """Image 0 (a column of 2s on the left) matches A: sum (x - A)^2 = 3 * 1^2 = 3, over 9 entries: 1/3.
    Image 1 (a column of 0.1s on the left, 2s on the right) matches B: 3 * (0.1^2 + 1^2) / 9 = 1.01 / 3."""
    images = np.zeros((2, 3, 3, 1), np.float32)
    images[0, :, 0] = 2.0
    images[1, :, 0], images[1, :, 2] = 0.1, 2.0
    patches = losses.mrf_target([tf.constant(MRF_STYLE)], [1.0])
    for value in both(losses.mrf_loss, tf.constant(images), patches):
        np.testing.assert_allclose(value, [1 / 3, 1.01 / 3], rtol=1e-6)


def test_mrf_nearest_is_by_correlation_not_distance():
    """A patch of 8s is parallel to A (all ones; NCC 1) but closer to B = 10 x (eight ones, one zero) in
    Euclidean distance (8 * 4 + 64 = 96 < 9 * 49 = 441): Li & Wand's NCC picks A, so E = 441 / 9 = 49."""
    patches = tf.constant(np.stack([np.ones(9), 10 * np.r_[np.ones(8), 0]]).astype(np.float32))
    for value in both(losses.mrf_loss, tf.constant(np.full((1, 3, 3, 1), 8.0, np.float32)), patches):
        np.testing.assert_allclose(value, [49.0], rtol=1e-6)


def test_mrf_gradient_pulls_each_patch_to_its_match():
    """4x3 image, two overlapping patches (rows 0-2, 1-3) both matched to A: dE/dx = 2/(m 9C) * sum over
    the patches covering x of (x - A at that place), m = 2."""
    x = tf.constant(np.array([[2, 0, 0]] * 4, np.float32)[None, :, :, None])
    patches = losses.mrf_target([tf.constant(MRF_STYLE)], [1.0])

    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = losses.mrf_loss(x, patches)
        return tape.gradient(loss, x)
    covered = np.array([1, 2, 2, 1], np.float32)[:, None]   # patches over each row
    expected = 2 / 18 * covered * np.array([[1, 0, 0]], np.float32)
    for value in (grad(x).numpy(), tf.function(grad)(x).numpy()):
        np.testing.assert_allclose(value[0, :, :, 0], expected, rtol=1e-6)


def column(values):
    """A [1, 1, w, 1] feature map holding `values`."""
    return tf.constant(np.asarray(values, np.float32).reshape(1, 1, -1, 1))


def test_sliced_target_pools_the_styles_by_blend_weight_within_max_samples():
    small = column(np.arange(5))
    np.testing.assert_array_equal(np.sort(losses.sliced_target([small], [1.0])[:, 0].numpy()), np.arange(5))
    wide = column(np.arange(100, 200))
    assert losses.sliced_target([wide], [1.0], max_samples=40).shape == (40, 1)
    mixed = losses.sliced_target([wide, column(np.arange(300, 400))], [0.25, 0.75], max_samples=40)[:, 0].numpy()
    assert (mixed < 200).sum() == 10 and (mixed >= 300).sum() == 30
    assert losses.sliced_target([small, wide], [1.0, 0.0]).shape == (5, 1)


def test_sliced_ranks_count_the_values_below_from_a_histogram():
    """Values in bins of their own get their exact ranks; values that share a bin at its left edge share
    the bin's first rank; on 20,000 random values no rank is off by more than a bin's count."""
    for value in both(losses.sliced_ranks, tf.constant([[[3.0, 1.0, 2.0, 2.5]]])):
        np.testing.assert_allclose(value, [[[3, 0, 1, 2]]], atol=1e-5)
    for value in both(losses.sliced_ranks, tf.constant([[[1.0, 1.0, 1.0, 5.0]]])):
        np.testing.assert_allclose(value, [[[0, 0, 0, 3]]], atol=1e-5)
    values = np.random.default_rng(0).standard_normal((1, 2, 20000)).astype(np.float32)
    exact = np.argsort(np.argsort(values, axis=-1), axis=-1)
    counts = max(np.histogram(row, 256)[0].max() for row in values[0])
    assert np.abs(losses.sliced_ranks(tf.constant(values), bins=256).numpy() - exact).max() <= counts


def test_sliced_quantiles_read_the_sorted_values_within_half_a_bin():
    """0..99 shuffled, 64 bins of width 99/64: the values of rank 0, 49.5 and 99 are 0, 49.5 and 99 to
    within half a bin."""
    values = tf.constant(np.random.default_rng(0).permutation(100).astype(np.float32)[None, None])
    for value in both(losses.sliced_quantiles, values, tf.constant([[[0.0, 49.5, 99.0]]]), 64):
        np.testing.assert_allclose(value, [[[0.0, 49.5, 99.0]]], atol=99 / 64 / 2)


def test_sliced_loss_compares_sorted_values():
    """One channel: the direction is +1 or -1 and either gives the same distances. [3, 1, 2] against the
    style [10, 30, 20]: sorted (1-10)^2 + (2-20)^2 + (3-30)^2 = 81 + 324 + 729, over 3 positions: 378. Two
    positions [5, 0] against four [3, 0, 2, 1]: the style's quantiles at levels 1/4 and 3/4 lie halfway
    between its sorted values 0, 1 and 2, 3 (levels 1/8, 3/8, 5/8, 7/8): 0.5 and 2.5, so
    ((0-0.5)^2 + (5-2.5)^2) / 2 = 3.25, for either direction. The style's values are read from 64 bins, to
    within half a bin (20/128 and 3/128), which moves the figures by less than 2%."""
    target = losses.sliced_target([column([10, 30, 20])], [1.0])
    for value in both(losses.sliced_loss, column([3, 1, 2]), target):
        np.testing.assert_allclose(value, [378.0], rtol=2e-2)
    for value in both(losses.sliced_loss, column([5, 0]), losses.sliced_target([column([3, 0, 2, 1])], [1.0])):
        np.testing.assert_allclose(value, [3.25], rtol=2e-2)


def test_sliced_scale_by_hand_and_the_relative_sliced_term_is_scale_free():
    # samples [[3, 4], [0, 0]]: (9 + 16 + 0 + 0) / (2 positions * 2 channels) = 6.25
    np.testing.assert_allclose(losses.sliced_scale(tf.constant([[3.0, 4.0], [0.0, 0.0]])).numpy(), 6.25, rtol=1e-6)
    rng = np.random.default_rng(1)
    image, style = (tf.constant(rng.random((1, 5, 6, 4)).astype(np.float32)) for _ in range(2))

    def relative(c):   # the network's features c times larger: the term and its scale grow alike
        target = losses.sliced_target([c * style], [1.0])
        return losses.sliced_loss(c * image, target).numpy()[0] / losses.sliced_scale(target).numpy()
    assert relative(4.0) == pytest.approx(relative(1.0), rel=1e-5) and relative(1.0) > 0.01


def test_sliced_loss_is_near_zero_for_the_style_rearranged_and_its_directions_come_from_the_seed():
    rng = np.random.default_rng(0)
    style = rng.random((1, 4, 6, 5)).astype(np.float32)
    shuffled = style.reshape(24, 5)[rng.permutation(24)].reshape(1, 6, 4, 5)   # same vectors, other places
    target = losses.sliced_target([tf.constant(style)], [1.0])
    other = rng.random((1, 6, 4, 5)).astype(np.float32)
    for value in both(losses.sliced_loss, tf.constant(np.concatenate([shuffled, other])), target):
        assert value[0] < 0.05 * value[1]   # only the histograms' half bins
        # batched or alone: the same value (the same directions for every image)
        np.testing.assert_allclose(value[1], losses.sliced_loss(tf.constant(other), target).numpy()[0], rtol=1e-6)
    seeds = [losses.sliced_loss(tf.constant(other), target, seed).numpy()[0] for seed in (0, 0, 1)]
    assert seeds[0] == seeds[1] != seeds[2]


def test_sliced_loss_gradient_pulls_each_value_to_the_style_value_of_its_rank():
    """dE/dx_j = 2 / N (x_j - t_rank(j)): [3, 1, 2] against [10, 20, 30] -> 2/3 (3-30, 1-10, 2-20), the
    style's values to within half of one of 64 bins."""
    x = column([3, 1, 2])
    target = losses.sliced_target([column([10, 30, 20])], [1.0])

    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = losses.sliced_loss(x, target)
        return tape.gradient(loss, x)
    for value in (grad(x).numpy(), tf.function(grad)(x).numpy()):
        np.testing.assert_allclose(value.ravel(), 2 / 3 * np.array([-27, -9, -18]), atol=2 / 3 * 20 / 128)
