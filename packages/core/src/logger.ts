/** Library code never prints: it reports through a logger (or callbacks) the caller supplies. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const noop = () => {};

/** A logger that drops everything — the default for every library entry point. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };
