// The dashboard against Grafana's own Dashboard type, from @grafana/schema at the version of the Grafana image in
// docker-compose.yml. `npm run check`, that is: node embed.mjs && npx tsc --noEmit -p .
//
// dashboard.gen.ts (written by embed.mjs, which says why the file is not imported as JSON) holds the dashboard file
// as an object literal `satisfies DashboardJson`: tsc fails on a field of the wrong type, a value outside a union
// or an enum, a missing required field, or a key the type does not have.
import type { Dashboard } from "@grafana/schema";

import { dashboard } from "./dashboard.gen.js";

/**
 * A type as JSON holds it: @grafana/schema declares some fields with TypeScript string enums (ThresholdsMode,
 * MappingType, SpecialValueMatch...), and a string enum admits only its own members, never the string that is
 * each member's value and that a JSON file holds ("absolute" for ThresholdsMode.Absolute). JsonOf replaces each
 * string enum by the union of its values (`${E}`) and keeps everything else: required and optional fields, other
 * unions, numbers (a numeric enum admits its values as they are), nested objects and arrays.
 */
export type JsonOf<T> = T extends string
  ? `${T}`
  : T extends ReadonlyArray<infer Item>
    ? Array<JsonOf<Item>>
    : T extends object
      ? { [K in keyof T]: JsonOf<T[K]> }
      : T;

export type DashboardJson = JsonOf<Dashboard>;

export const checked: DashboardJson = dashboard;
