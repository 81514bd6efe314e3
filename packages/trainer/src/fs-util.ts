import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { TypeformerError } from "@typeformer/core";

/** The file-system writes the trainer performs; tests swap it to simulate a full disk. */
export interface TrainerIO {
  writeFile(file: string, data: string | Uint8Array): Promise<void>;
}

export const nodeIO: TrainerIO = {
  writeFile: (file, data) => writeFile(file, data),
};

/** Writes `data` to a temporary sibling and renames it over `file`: readers never see a partial file. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, io: TrainerIO = nodeIO) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await io.writeFile(tmp, data);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new TypeformerError(
      "IO_ERROR",
      `writing ${file} failed: ${(e as Error).message}`,
      { path: file },
      {
        cause: e,
      },
    );
  }
}
