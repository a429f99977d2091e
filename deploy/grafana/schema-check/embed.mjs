// Writes dashboard.gen.ts: a dashboard JSON file as a TypeScript object literal that `satisfies DashboardJson`
// (check.ts: Grafana's Dashboard type as JSON holds it), for check.ts.
//
//   node embed.mjs [DASHBOARD.json [OUT.ts]]     (default: ../dashboards/ia-modules-pipelines.json, dashboard.gen.ts)
//
// Why not `import dashboard from "../dashboards/x.json"` (resolveJsonModule): TypeScript gives an imported JSON
// file widened types ("query" becomes string), while Grafana's Dashboard type has string-literal unions (a
// variable's `type`, a panel's `repeatDirection`), so no dashboard with a variable could ever be assigned to it.
// An object literal in a `satisfies` expression keeps its literal types, and TypeScript also refuses any key that
// the type does not have (a misspelt `fieldConfg`), which an assignment from an imported file would let through.
// The literal starts on line 4, so line N of the JSON file is line N + 3 of the output.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const input = resolve(process.argv[2] ?? resolve(here, "../dashboards/ia-modules-pipelines.json"));
const output = resolve(process.argv[3] ?? resolve(here, "dashboard.gen.ts"));

const text = readFileSync(input, "utf8").trim();
JSON.parse(text); // a file that is not JSON stops here, named by the error
const header = [
  `// Written by embed.mjs from ${JSON.stringify(input)}; not committed.`,
  `import type { DashboardJson } from "./check.js";`,
  ``,
];
writeFileSync(output, `${header.join("\n")}\nexport const dashboard = ${text} satisfies DashboardJson;\n`);
console.log(`embedded ${input} in ${output}`);
