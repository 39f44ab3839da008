"""Guarded Adam updates: one fused Adam kernel per variable, applied only where a flag is
true, without a `tf.cond`.

Why not `tf.cond(ok, lambda: opt.apply_gradients(...))`: every requeued attempt traces the
training step again, and Keras's `apply_gradients` (its distribution-strategy merge call, name
scopes, ~20 graph ops per variable) inside a `tf.cond` (two branch functions, which Grappler
then inlines) was ~1/3 of that tracing (issue 14). Here each variable gets TensorFlow's fused
`ResourceApplyAdam` kernel (Keras's formula: m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2),
var -= alpha m / (sqrt(v) + eps), alpha = lr sqrt(1 - b2^t) / (1 - b1^t); it rounds
differently from Keras's separate ops in the last bit). A skipped update runs the same kernel
as an exact no-op: gradient 0, beta1 = beta2 = 1 and learning rate 0 leave every variable and
moment bit for bit as it was (non-finite gradients never reach the kernel), and the iteration
count does not move (`tests/test_optim.py`).

The optimizer object stays Keras's: it owns the moments, the learning rate and the iteration
count, so checkpoints are unchanged and interchangeable with those written before.
"""

from __future__ import annotations

from qgan.tflib import keras, tf


def _check(opt: keras.optimizers.Optimizer) -> None:
    """Only the plain Adam this project builds (qgan.models.build_models) is supported."""
    if not isinstance(opt, keras.optimizers.Adam) or opt.amsgrad or opt.weight_decay \
            or opt.use_ema or opt.gradient_accumulation_steps or opt.loss_scale_factor \
            or opt.clipnorm or opt.clipvalue or opt.global_clipnorm:
        raise ValueError(f"guarded_adam supports plain keras Adam only, got {opt!r}")
    if not opt.built:
        raise ValueError("build the optimizer (optimizer.build(variables)) before tracing")


def guarded_adam(opt: keras.optimizers.Optimizer, grads: list[tf.Tensor], variables: list,
                 ok: tf.Tensor) -> tf.Tensor:
    """One Adam update of `variables` by `grads` if `ok`, else nothing; returns `ok`.

    `grads` may hold non-finite values when `ok` is false: they reach only the discarded
    branch of `tf.where`.
    """
    _check(opt)
    step = tf.cast(opt.iterations + 1, tf.float32)
    beta_1, beta_2 = tf.constant(opt.beta_1, tf.float32), tf.constant(opt.beta_2, tf.float32)
    hyper = {"beta1_power": tf.pow(beta_1, step), "beta2_power": tf.pow(beta_2, step),
             "lr": tf.where(ok, tf.cast(opt.learning_rate, tf.float32), 0.0),
             "beta1": tf.where(ok, beta_1, 1.0), "beta2": tf.where(ok, beta_2, 1.0),
             "epsilon": tf.constant(opt.epsilon, tf.float32)}
    for grad, var in zip(grads, variables):
        if var.dtype != tf.float32:
            raise ValueError(f"guarded_adam: {var.name} is {var.dtype}, expected float32")
        index = opt._get_variable_index(var)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(var), m=_handle(opt._momentums[index]),
            v=_handle(opt._velocities[index]), grad=tf.where(ok, grad, 0.0), **hyper)
    opt.iterations.assign_add(tf.cast(ok, opt.iterations.dtype))
    return ok


def _handle(variable) -> tf.Tensor:
    """The resource handle of a tf.Variable or of a Keras 3 variable (which wraps one)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle
