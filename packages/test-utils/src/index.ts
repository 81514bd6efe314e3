export { availableBackends, describeEachBackend, useBackend } from "./backends.js";
export type { CloseOptions } from "./close.js";
export { assertClose, maxAbsDiff } from "./close.js";
export { expectNoLeaks, withNoLeaks } from "./leaks.js";
export { f64 } from "./reference.js";
