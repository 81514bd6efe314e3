import { tf } from "@typeformer/core";

/**
 * Runs `fn` and asserts that `tf.memory().numTensors` is the same afterwards: every tensor the code
 * under test created was disposed or returned for the caller to dispose (pass `allowed` for those).
 */
export async function expectNoLeaks<T>(fn: () => T | Promise<T>, allowed = 0): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const after = tf.memory().numTensors;
  if (after - before !== allowed) {
    throw new Error(
      `tensor leak: numTensors ${before} before, ${after} after (expected a change of ${allowed})`,
    );
  }
  return result;
}

/** Like {@link expectNoLeaks} but disposes tensors found in the result before counting. */
export async function withNoLeaks<T>(fn: () => T | Promise<T>): Promise<void> {
  const before = tf.memory().numTensors;
  const result = await fn();
  tf.dispose(result as unknown as tf.TensorContainer);
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`tensor leak: numTensors ${before} before, ${after} after`);
}
