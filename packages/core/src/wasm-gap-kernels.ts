import * as tf from "@tensorflow/tfjs";

/**
 * Kernels the tf.js wasm backend lacks but training needs. `UnsortedSegmentSum` is the gradient of
 * `gather`, i.e. of every embedding lookup; without it no model with embeddings trains on wasm.
 */
interface WasmBackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array;
}

let registered = false;

export function registerWasmGapKernels(): void {
  if (registered) return;
  registered = true;
  if (!tf.getKernel("UnsortedSegmentSum", "wasm")) {
    tf.registerKernel({
      kernelName: "UnsortedSegmentSum",
      backendName: "wasm",
      kernelFunc: ({ inputs, backend, attrs }) => {
        const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
        const numSegments = (attrs as unknown as { numSegments: number }).numSegments;
        const b = backend as unknown as WasmBackendLike;
        const xs = b.readSync(x.dataId);
        const ids = b.readSync(segmentIds.dataId);
        const numIds = segmentIds.shape.reduce((a, d) => a * d, 1);
        const inner = numIds === 0 ? 0 : xs.length / numIds;
        const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
        const out = b.makeOutput(outShape, x.dtype);
        const vals = b.typedArrayFromHeap(out);
        vals.fill(0);
        for (let i = 0; i < numIds; i++) {
          const seg = ids[i];
          if (seg < 0 || seg >= numSegments) continue;
          const src = i * inner;
          const dst = seg * inner;
          for (let j = 0; j < inner; j++) vals[dst + j] += xs[src + j];
        }
        return out;
      },
    });
  }
}
