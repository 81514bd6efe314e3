import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { TypeformerError } from "../errors.js";

/** Wraps a Node fs error into a TypeformerError (`NOT_FOUND` for ENOENT, else `IO_ERROR`). */
export function ioError(e: unknown, action: string, file: string): TypeformerError {
  if (e instanceof TypeformerError) return e;
  const code = (e as NodeJS.ErrnoException)?.code;
  return new TypeformerError(
    code === "ENOENT" ? "NOT_FOUND" : "IO_ERROR",
    `${action} ${JSON.stringify(file)} failed: ${(e as Error)?.message ?? String(e)}`,
    { path: file, errno: code },
    { cause: e },
  );
}

/**
 * Writes `target` through a temporary file in the same directory: `fn` writes to the handle, the
 * data is flushed to disk, and the temporary file is renamed over `target`. Readers see either the
 * old file or the complete new one, never a partial write. On failure the temporary file is removed.
 */
export async function withAtomicFile<T>(target: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
  const dir = path.dirname(target);
  const tmp = path.join(
    dir,
    `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`,
  );
  let fh: FileHandle;
  try {
    fh = await open(tmp, "wx");
  } catch (e) {
    throw ioError(e, "creating", tmp);
  }
  try {
    const result = await fn(fh);
    await fh.sync();
    await fh.close();
    await rename(tmp, target);
    return result;
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw ioError(e, "writing", target);
  }
}

/** Writes a whole file atomically (temp file + fsync + rename). Strings are written as UTF-8. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await withAtomicFile(target, async (fh) => {
    await fh.writeFile(data);
  });
}
