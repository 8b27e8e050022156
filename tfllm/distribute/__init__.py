"""Where a run's computation is placed: tf.distribute strategies and DTensor meshes
(distribution), and the checks a placement must pass before TensorFlow loads (placement)."""
