export type { Dashboard, DashboardEvent, DashboardOptions } from "./server.js";
export { startDashboard } from "./server.js";
