"""Training a stylizer (Johnson et al. 2016; several styles: Dumoulin et al. 2017) with the run's objective.

`work` is --mode=train (a mode of `nst_tf.lifecycle`): the objective is the one an optimization minimizes
(`nst_tf.objective`, the same layers, weights and statistics), but what is optimized is the network's
weights, over random crops of the training photos (`nst_tf.stylizer.data`):

  loss = mean over the batch of  alpha * content(N(x), x) + beta * style(N(x), style s) + tv * TV(N(x))

The style targets (one set per style image) are computed once; the content targets are each batch's own
photos' features, computed inside the compiled step. With several styles, step k trains style k mod S
(its one-hot weights select the normalization's scales and shifts).

A run folder as for every run: run.flags, TensorBoard and losses.csv/losses.png (every named term, the
batch mean), snapshots/step_N.png (the held-out photos stylized: the sample grid), checkpoints/
(`tf.train.CheckpointManager`: network, Adam's state, step) written with each snapshot and when stopped,
and stylizer.keras (written atomically; also when stopped, so that a partly trained network is usable).
`--resume=<run>` continues from the last checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time

import keras
import numpy as np
import tensorflow as tf

from nst_tf import backbones, balance, engine, image_io, lifecycle, losses
from nst_tf.config import Config, with_loss_defaults
from nst_tf.errors import Diverged, Interrupted, OutOfMemory, UserError
from nst_tf.evaluate import WholeImage
from nst_tf.inputs import Inputs
from nst_tf.objective import WHOLE, Objective, Targets, compute_targets, loss_weights, term_names
from nst_tf.blur import blurred_backward
from nst_tf.plan import EffectiveWeights, pick_device, resolve
from nst_tf.stylizer import data, network
from nst_tf.summaries import NonFiniteLoss, RunLogger

MODEL_FILE = "stylizer.keras"
CHECKPOINTS = "checkpoints"


def style_name(path: str) -> str:
    """A style's name for the network (its file stem, in letters, digits, - and _)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", os.path.splitext(os.path.basename(path))[0]).strip("-") or "style"


def save_model(model: keras.Model, run_dir: str) -> str:
    """Writes `run_dir/stylizer.keras` atomically (a stopped write leaves the previous file); returns its path."""
    path = os.path.join(run_dir, MODEL_FILE)
    partial = os.path.join(run_dir, ".partial." + MODEL_FILE)
    model.save(partial)
    os.replace(partial, path)
    return path


class Trainer:
    """The pieces of one training run: the loss of a batch, the network, Adam, and one compiled step."""

    def __init__(self, config: Config, extractor: keras.Model, styles: list[np.ndarray], model: keras.Model):
        config = with_loss_defaults(config)
        loss, st = config.loss, config.stylizer
        self.config, self.extractor, self.model = config, extractor, model
        size = st.train_size
        self.weights = EffectiveWeights.of(config, (size, size))
        self.content_layers = tuple(self.weights.layers["content"])
        self.style_layers = tuple(self.weights.layers["style"])
        evaluator = WholeImage(extractor)
        per_style = [compute_targets(evaluator, Inputs(None, [s]), (), self.style_layers, loss.style_loss).style
                     for s in styles]
        # {layer: [S, C, C]}: style s's statistics at row s
        self.style_targets = {n: tf.concat([t[n] for t in per_style], axis=0) for n in self.style_layers}
        self.counts = {n: losses.gram_count(evaluator.feature_shape(n, size, size)) for n in self.style_layers}
        self.loss_weights = loss_weights([self.weights.flat()] * st.batch_size)
        self.optimizer = keras.optimizers.Adam(st.train_learning_rate)
        self.optimizer.build(model.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.num_styles = len(styles)
        self.names = term_names(self.weights.term_layers())
        self.train_step = tf.function(self._train_step)

    def objective(self, photos: tf.Tensor, style_index: tf.Tensor) -> Objective:
        """The objective of one batch: its photos' content features as targets, style `style_index`'s statistics."""
        loss = self.config.loss
        features = self.extractor(photos)
        content = {n: tf.stop_gradient(features[n]) for n in self.content_layers}
        targets = Targets(content, {n: tf.gather(self.style_targets[n], style_index[None]) for n in self.style_layers},
                          {}, None, self.counts,
                          {n: losses.content_scale(t, loss.content_loss) for n, t in content.items()})
        return Objective(self.content_layers, self.style_layers, targets, loss.content_loss, loss.gram_norm,
                         loss.normalize_gradients, loss.normalize_terms, loss.style_loss)

    def style_weights(self, batch: tf.Tensor, style_index: tf.Tensor) -> tf.Tensor:
        return tf.one_hot(tf.fill([batch], style_index), self.num_styles)

    def _train_step(self, photos: tf.Tensor, style_index: tf.Tensor) -> dict[str, tf.Tensor]:
        """One Adam step on the network's weights; the batch's mean of every named term."""
        objective = self.objective(photos, style_index)
        with tf.GradientTape() as tape:
            out = self.model([photos, self.style_weights(tf.shape(photos)[0], style_index)], training=True)
            # the network's gradient through the loss network is blurred as the optimization's is (--gradient_blur)
            seen = blurred_backward(out, self.config.blur_passes)
            total, terms = objective.terms(objective.sums(self.extractor(seen), WHOLE, self.loss_weights), out,
                                           self.loss_weights)
            mean = tf.reduce_mean(total)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(mean, variables), variables))
        self.step.assign_add(1)
        return {name: tf.reduce_mean(terms[name]) for name in self.names}

    def stylize(self, photos: list[np.ndarray], style_index: int) -> list[np.ndarray]:
        w = np.eye(self.num_styles, dtype=np.float32)[[style_index]]
        return [self.model([p[None], w], training=False)[0].numpy() for p in photos]

    def sample_grid(self, photos: list[np.ndarray]) -> np.ndarray:
        """Rows: the held-out photos; columns: the photo, then the network's result for each style."""
        rows = [np.concatenate([p, *(self.stylize([p], s)[0] for s in range(self.num_styles))], axis=1)
                for p in photos]
        return np.concatenate(rows, axis=0)


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square of `image`, at size x size px (a sample grid's cell)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image_io.resize(image[top:top + side, left:left + side], (size, size))


def work(run: lifecycle.Run) -> None:
    """--mode=train: trains the stylizer `run.config` describes, into a new run folder (stylizer.keras in
    it), or continues the one stopped in `run.resume_dir` from its last checkpoint. Raises UserError for bad
    input, `Diverged` for a non-finite loss, `OutOfMemory`, and `Interrupted` on Ctrl-C/SIGTERM, after writing
    a checkpoint and stylizer.keras of the step reached."""
    say = run.say
    config = resolve(run.config, say)
    st, out = config.stylizer, config.output
    photos, held_out = data.training_photos(st.train_images)
    if st.train_images is None and data.default_set_note():
        say(data.default_set_note())
    styles = [image_io.load_resized(p, max(16, round(st.train_size * config.images.style_scale)))
              for p in config.style_paths]
    device = pick_device(config.optim.device)
    keras.utils.set_random_seed(config.optim.seed)
    samples = [_square(p, st.train_size) for p in data.sample_photos(held_out, st.train_size)]
    with tf.device(device):
        backbone = engine.load_network(config, say)
        # --strength: alpha, beta and the layer weights from the held-out photos against every style (a resumed
        # run's own run.flags holds the weights found when it started)
        config, found = balance.resolve_training(config, samples, styles, backbone, say)
        weights = EffectiveWeights.of(config, (st.train_size, st.train_size))
        m = config.model
        extractor = backbones.build_extractor(backbone.model, weights.all_layers(),
                                              m.feature_transform, backbone.channel_means, m.softmax_temperature,
                                              config.blur_passes)
        model = network.build_stylizer(len(styles), st.stylizer_width, tuple(style_name(p) for p in config.style_paths),
                                       st.stylizer_arch)
        trainer = Trainer(config, extractor, styles, model)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=trainer.optimizer, step=trainer.step)
        start = 0
        if run.resume_dir:   # refused before run.flags is rewritten with the new flags
            folder = run.resume_dir
            latest = tf.train.latest_checkpoint(os.path.join(folder, CHECKPOINTS))
            if latest is None:
                raise UserError(f"{folder!r} has no checkpoint to resume from (it stopped before its first); "
                                "start the training again.")
            checkpoint.restore(latest).expect_partial()
            start = int(trainer.step.numpy())
            if start >= st.train_steps:
                raise UserError(f"{folder!r} is already at step {start} of {st.train_steps}; pass a larger "
                                "--train_steps to continue it.")
        run_dir = run.open(config, note=f" (--strength={found.strength:g} found its weights)" if found else "")
        manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, CHECKPOINTS), max_to_keep=2)
        if run.resume_dir:
            say(f"resuming {run_dir} at step {start}")
        else:
            say(f"run folder: {run_dir} ({len(photos)} training photos, {len(held_out)} held out; "
                f"{len(styles)} style{'s' * (len(styles) > 1)}; {model.count_params():,} weights)")
        crops = data.Crops(photos, st.train_size, config.optim.seed + start)   # a resumed run draws new crops
        logger = RunLogger(run_dir, trainer.names, st.train_steps, out.save_every, run.show_progress, desc="training")
        if run.resume_dir:
            logger.resume(start, trainer.sample_grid(samples), through=True)
        else:
            logger.log_inputs({f"{i + 1}_style": s for i, s in enumerate(styles)})
        began = time.monotonic()

        def save(step: int) -> None:
            manager.save(checkpoint_number=step)
            save_model(model, run_dir)

        def record() -> None:
            rows = logger.rows
            run.record(steps=int(trainer.step.numpy()), wall_time_s=logger.elapsed, device=device,
                       final={k: v for k, v in (rows[-1] if rows else {}).items() if k not in ("step", "wall_s")},
                       details={"backbone": config.model.backbone, "styles": list(config.style_paths),
                                "training_photos": len(photos), "held_out": list(held_out),
                                "effective_weights": dataclasses.asdict(trainer.weights),
                                "balance": dataclasses.asdict(found) if found else None,
                                "this_session_s": round(time.monotonic() - began, 3), "model": MODEL_FILE})

        step = start
        try:
            grid = None
            while step < st.train_steps:
                style_index = tf.constant(step % len(styles), tf.int32)
                terms = trainer.train_step(tf.constant(crops.next_batch(st.batch_size)), style_index)
                step += 1
                if step % out.log_every and step != st.train_steps:
                    continue
                if grid is None or logger.snapshot_due(step) or step == st.train_steps:
                    grid = trainer.sample_grid(samples)
                snapshot = logger.last_snapshot
                logger(step, grid[None], {name: np.asarray(v)[None] for name, v in terms.items()})
                if logger.last_snapshot != snapshot:
                    save(step)
        except NonFiniteLoss as e:
            logger.close()
            raise Diverged(f"{e}; the last checkpoint is in {os.path.join(run_dir, CHECKPOINTS)} "
                           "(--train_learning_rate lower, then --resume)") from None
        except tf.errors.ResourceExhaustedError:
            logger.close()
            raise OutOfMemory(f"out of memory at {st.batch_size} crops of {st.train_size} px on {device}; lower "
                              "--batch_size or --train_size (the last checkpoint is kept: --resume)") from None
        except KeyboardInterrupt:
            save(int(trainer.step.numpy()))
            logger.close()
            raise Interrupted(f"interrupted at step {int(trainer.step.numpy())}; the checkpoint and stylizer.keras "
                              f"of that step are in {run_dir} (--resume={run_dir} continues)") from None
        finally:
            record()
        save(step)
        image_io.save_image(grid, os.path.join(run_dir, "samples.png"))
        logger.close(final_image=grid)
        record()
    if st.export:
        from nst_tf.stylizer import export
        for path in export.export(model, run_dir, st.export):
            say(f"exported: {path}")
    say(f"stylizer: {os.path.join(run_dir, MODEL_FILE)} ({step - start} steps in {time.monotonic() - began:.0f} s); "
        f"samples: {os.path.join(run_dir, 'samples.png')}")


def train(config: Config, show_progress: bool = True, say=print, resume_dir: str | None = None) -> str:
    """`nst_tf.lifecycle.run` of a --mode=train config, kept for scripts that call it; returns the run folder."""
    return lifecycle.run(config, show_progress=show_progress, say=say, resume_dir=resume_dir)
