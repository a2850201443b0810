/**
 * The import graph of `src/` keeps the shape DESIGN.md draws: folders in layers (a folder imports
 * only folders below it), pure libraries free of I/O layers, no role reaching into a sibling role,
 * no cycles between folders, and test doubles and benchmarks outside production code. Every
 * import specifier (static, type-only, re-export, side-effect and dynamic `import()`) of every
 * `.ts` file under `src/`, `test/` and `bench/` is read as text, so a failure names the
 * file, the specifier and the rule it breaks.
 *
 * @module
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const ROOT = resolve(import.meta.dir, '..')

/**
 * The layer order, lowest first: a production file may import its own folder and folders of a
 * LOWER layer only. `src/*.ts` other than `main.ts` is the shared base (KeylimeError,
 * ToolContext); `main.ts` is the entry point above everything.
 */
const LAYERS: readonly { folder: string; layer: number; why: string }[] = [
  { folder: '(root)', layer: 0, why: 'src/errors.ts, src/tool-context.ts: the shared base' },
  { folder: 'log', layer: 1, why: 'JSON-lines logger, error description' },
  { folder: 'protocol', layer: 2, why: 'pure Keylime conventions every role shares' },
  { folder: 'tpm', layer: 3, why: 'pure TPM structures, crypto and quote checks' },
  { folder: 'ima', layer: 4, why: 'pure IMA lists, runtime policies, evaluation' },
  { folder: 'mb', layer: 4, why: 'pure UEFI event logs, refstates, evaluation' },
  { folder: 'config', layer: 5, why: 'upstream-compatible configuration files' },
  { folder: 'db', layer: 5, why: 'drizzle schema, connections, migrations' },
  { folder: 'policy-tools', layer: 5, why: '`keylime policy …` builders over ima and mb' },
  { folder: 'ca', layer: 6, why: 'cv_ca, TLS material and CRLs the http layer serves with' },
  { folder: 'http', layer: 7, why: 'hono app, envelope, mTLS listeners, agent client' },
  { folder: 'registrar', layer: 8, why: 'role' },
  { folder: 'verifier', layer: 8, why: 'role' },
  { folder: 'tenant', layer: 8, why: 'role (operator CLI)' },
  { folder: 'agent', layer: 8, why: 'role (slim agent build)' },
  { folder: 'dashboard', layer: 8, why: 'local web UI over the admin API' },
  { folder: 'cli', layer: 9, why: 'argv dispatch to roles and tools' },
  { folder: 'main.ts', layer: 10, why: 'entry point' },
]

/** Pure libraries: no HTTP, database, configuration, roles, CLI or agent (DESIGN.md). */
const PURE = ['protocol', 'tpm', 'ima', 'mb']

/** Role folders: none imports a sibling role's files. */
const ROLES = ['registrar', 'verifier', 'tenant', 'ca', 'agent']

/** The slim agent build carries no control-plane code (see agent-bundle.test.ts). */
const AGENT_MAY_IMPORT = ['(root)', 'log', 'protocol', 'tpm', 'agent']

/**
 * Inside the verifier, the folders follow its data flow, lowest first (DESIGN.md): a file may
 * import its own folder and lower entries only. `errors.ts` is the role's base; the composition
 * root `start-verifier.ts` sits on top.
 */
const VERIFIER_LAYERS: readonly { path: string; layer: number; why: string }[] = [
  { path: 'src/verifier/errors.ts', layer: 0, why: "the role's typed errors" },
  { path: 'src/verifier/store', layer: 1, why: 'repositories over the verifier tables' },
  { path: 'src/verifier/checks', layer: 2, why: 'evaluate-evidence, its adapters, check workers' },
  { path: 'src/verifier/notify', layer: 3, why: 'revocation notices' },
  { path: 'src/verifier/ops', layer: 3, why: 'metrics, heap governor' },
  { path: 'src/verifier/results', layer: 3, why: 'EAR claims, signing keys, JWKS' },
  { path: 'src/verifier/loop', layer: 4, why: 'pull state machine, scheduler, leases, writes' },
  {
    path: 'src/verifier/push/sessions',
    layer: 4,
    why: 'push-mode authentication: sessions, tokens, rate limits, their routes (over store)',
  },
  {
    path: 'src/verifier/push',
    layer: 5,
    why: 'push mode (API 3.0): attestations, evidence, liveness over loop records, checks, store',
  },
  { path: 'src/verifier/api', layer: 6, why: 'routes and services over push, loop, checks, store' },
  { path: 'src/verifier/start-verifier.ts', layer: 7, why: 'composition root' },
]

/** Declared exceptions to the sibling-role rule, one line per import, each with its reason. */
const ALLOWED_SIBLING_IMPORTS: readonly { from: string; to: string; why: string }[] = [
  {
    from: 'src/tenant/cert-package.ts',
    to: 'src/ca/cert-authority.ts',
    why: '`keylime_tenant --cert DIR` issues the package with the CA, as upstream calls ca_util',
  },
  {
    from: 'src/tenant/cert-package.ts',
    to: 'src/ca/ca-settings.ts',
    why: 'the CA settings (ca.conf) that package issuance uses',
  },
  {
    from: 'src/tenant/load-client-tls.ts',
    to: 'src/ca/resolve-tls-files.ts',
    why: 'the tenant resolves its mTLS files by the rules the roles use (default cv_ca paths)',
  },
  {
    from: 'src/tenant/load-client-tls.ts',
    to: 'src/ca/ca-files.ts',
    why: 'bounded reads of the key and certificate files resolved above',
  },
  {
    from: 'src/tenant/load-client-tls.ts',
    to: 'src/ca/rsa-keys.ts',
    why: 'decrypts the password-protected client key as the roles do',
  },
  {
    from: 'src/verifier/push/sessions/token-key-file.ts',
    to: 'src/ca/ca-files.ts',
    why: 'the session token key is written (0600, atomically) and read as the CA keys beside it',
  },
  {
    from: 'src/verifier/results/ear-keys.ts',
    to: 'src/ca/ca-files.ts',
    why: 'the EAR signing keys are written (0600, atomically) and read as the CA keys beside them',
  },
]

/** One import: the importing file, its specifier and the repository path it resolves to. */
interface ImportEdge {
  from: string
  spec: string
  to: string
  line: number
}

// Static imports and re-exports (also `import type`, multi-line braces), side-effect imports, and
// dynamic `import('…')`. Only statements at the start of a line count, so `@example` blocks in
// TSDoc (` * import …`) are not read as imports.
const STATIC_RE = /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s*)?['"]([^'"]+)['"]/gm
const DYNAMIC_RE = /^(?![ \t]*(?:\*|\/\/)).*?\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm

/** Every `.ts`/`.tsx` file under `src/`, `test/` and `bench/`, committed or not. */
function tsFiles(): string[] {
  const glob = new Bun.Glob('{src,test,bench}/**/*.{ts,tsx}')
  return [...glob.scanSync({ cwd: ROOT })].filter((f) => !f.includes('node_modules/')).sort()
}

function readEdges(): ImportEdge[] {
  const edges: ImportEdge[] = []
  for (const from of tsFiles()) {
    const text = readFileSync(join(ROOT, from), 'utf8')
    for (const re of [STATIC_RE, DYNAMIC_RE]) {
      for (const m of text.matchAll(re)) {
        const spec = m[1]!
        if (!spec.startsWith('.')) continue // packages and node: builtins
        const to = relative(ROOT, resolve(ROOT, dirname(from), spec))
        const line = text.slice(0, m.index).split('\n').length
        edges.push({ from, spec, to, line })
      }
    }
  }
  return edges
}

/** `src/<folder>/…` → folder; `src/main.ts` → `main.ts`; other `src/*.ts` → `(root)`. */
function folderOf(path: string): string | undefined {
  const parts = path.split('/')
  if (parts[0] !== 'src') return undefined
  if (parts.length === 2) return parts[1] === 'main.ts' ? 'main.ts' : '(root)'
  return parts[1]
}

const isTest = (path: string): boolean => path.endsWith('.test.ts')
const isProduction = (path: string): boolean => path.startsWith('src/') && !isTest(path)
const show = (e: ImportEdge): string => `${e.from}:${e.line} imports '${e.spec}' (${e.to})`
const LAYER = new Map(LAYERS.map((l) => [l.folder, l.layer]))

/** The entry of {@link VERIFIER_LAYERS} a `src/verifier/…` path belongs to. */
function verifierLayerOf(path: string): { path: string; layer: number } | undefined {
  return VERIFIER_LAYERS.find((l) => path === l.path || path.startsWith(`${l.path}/`))
}

/** Cycles in a graph given as node → (neighbour → the import that made the edge). */
function findCycles(graph: Map<string, Map<string, ImportEdge>>): string[] {
  const cycles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (n: string): void => {
    state.set(n, 'open')
    path.push(n)
    for (const [m, e] of graph.get(n) ?? []) {
      if (state.get(m) === 'open') {
        const loop = [...path.slice(path.indexOf(m)), m]
        cycles.push(`${loop.join(' -> ')} (closing import: ${show(e)})`)
      } else if (!state.has(m)) visit(m)
    }
    path.pop()
    state.set(n, 'done')
  }
  for (const n of graph.keys()) if (!state.has(n)) visit(n)
  return cycles
}

/** The graph between the nodes `nodeOf` gives each production import's two ends. */
function graphOf(nodeOf: (path: string) => string): Map<string, Map<string, ImportEdge>> {
  const graph = new Map<string, Map<string, ImportEdge>>()
  for (const e of PRODUCTION) {
    const a = nodeOf(e.from)
    const b = nodeOf(e.to)
    if (a === b) continue
    const out = graph.get(a) ?? graph.set(a, new Map()).get(a)!
    if (!out.has(b)) out.set(b, e)
  }
  return graph
}

const EDGES = readEdges()
const PRODUCTION = EDGES.filter((e) => isProduction(e.from) && e.to.startsWith('src/'))

describe('import graph', () => {
  test('the graph was read (the parser finds imports)', () => {
    expect(PRODUCTION.length).toBeGreaterThan(500)
    expect(EDGES.some((e) => e.from === 'src/main.ts')).toBe(true)
  })

  test('every src/ folder has a place in the layer table', () => {
    const unknown = new Set<string>()
    for (const f of tsFiles()) {
      const folder = folderOf(f)
      if (folder !== undefined && !LAYER.has(folder)) unknown.add(`src/${folder}`)
    }
    expect([...unknown], 'add these folders to LAYERS in test/import-graph.test.ts').toEqual([])
  })

  test('production code imports only its own folder and lower layers', () => {
    const bad: string[] = []
    for (const e of PRODUCTION) {
      const a = folderOf(e.from)!
      const b = folderOf(e.to)!
      if (a === b) continue
      const la = LAYER.get(a)
      const lb = LAYER.get(b)
      if (la === undefined || lb === undefined || lb >= la) {
        bad.push(`${show(e)}: ${a} (layer ${la}) may not import ${b} (layer ${lb})`)
      }
    }
    expect(bad, 'layer order: see LAYERS in test/import-graph.test.ts').toEqual([])
  })

  test('pure libraries (protocol, tpm, ima, mb) import no http/db/config/role/cli/agent code', () => {
    const bad = PRODUCTION.filter((e) => {
      const a = folderOf(e.from)!
      const b = folderOf(e.to)!
      return PURE.includes(a) && a !== b && !['(root)', 'log', ...PURE].includes(b)
    }).map((e) => `${show(e)}: ${folderOf(e.from)} is a pure library`)
    expect(bad).toEqual([])
  })

  test("no role imports a sibling role's files (declared exceptions aside)", () => {
    const allowed = new Set(ALLOWED_SIBLING_IMPORTS.map((x) => `${x.from} -> ${x.to}`))
    const used = new Set<string>()
    const bad: string[] = []
    for (const e of PRODUCTION) {
      const a = folderOf(e.from)!
      const b = folderOf(e.to)!
      if (a === b || !ROLES.includes(a) || !ROLES.includes(b)) continue
      const key = `${e.from} -> ${e.to}`
      if (allowed.has(key)) used.add(key)
      else bad.push(`${show(e)}: role ${a} reaches into role ${b}`)
    }
    expect(bad, 'move the shared piece down, or declare it in ALLOWED_SIBLING_IMPORTS').toEqual([])
    const stale = [...allowed].filter((k) => !used.has(k))
    expect(stale, 'exceptions no longer needed: remove them from ALLOWED_SIBLING_IMPORTS').toEqual(
      [],
    )
  })

  test('the slim agent imports only the base, log, protocol and tpm', () => {
    const bad = PRODUCTION.filter(
      (e) => folderOf(e.from) === 'agent' && !AGENT_MAY_IMPORT.includes(folderOf(e.to)!),
    ).map(show)
    expect(bad).toEqual([])
  })

  test('no cycle between src/ folders', () => {
    expect(findCycles(graphOf((p) => folderOf(p)!))).toEqual([])
  })

  test('no cycle between directories at any depth (src/verifier/loop, src/http/ops, …)', () => {
    // A file beside subfolders (src/errors.ts, src/http/serve.ts, src/verifier/start-verifier.ts)
    // is a node of its own: such folders hold both a base and a composition root.
    const dirs = new Set(tsFiles().map((f) => dirname(f)))
    const hasSubfolder = (d: string): boolean => [...dirs].some((x) => x.startsWith(`${d}/`))
    const nodeOf = (p: string): string => (hasSubfolder(dirname(p)) ? p : dirname(p))
    expect(findCycles(graphOf(nodeOf))).toEqual([])
  })

  test('inside the verifier, files import only their own folder and lower ones', () => {
    const bad: string[] = []
    for (const e of PRODUCTION) {
      if (!e.from.startsWith('src/verifier/') || !e.to.startsWith('src/verifier/')) continue
      const a = verifierLayerOf(e.from)
      const b = verifierLayerOf(e.to)
      if (a === undefined || b === undefined) {
        bad.push(`${show(e)}: add the path to VERIFIER_LAYERS`)
      } else if (a.path !== b.path && b.layer >= a.layer) {
        bad.push(`${show(e)}: ${a.path} (layer ${a.layer}) may not import ${b.path} (${b.layer})`)
      }
    }
    expect(bad, 'verifier data flow: see VERIFIER_LAYERS in test/import-graph.test.ts').toEqual([])
  })

  test('production code imports nothing from test/ or bench/', () => {
    const bad = EDGES.filter(
      (e) => isProduction(e.from) && (e.to.startsWith('test/') || e.to.startsWith('bench/')),
    ).map(show)
    expect(bad, 'test doubles and harnesses live in test/support, used by tests only').toEqual([])
  })

  test('no test suite or test/support module imports bench/ (bench imports test/support)', () => {
    const bad = EDGES.filter(
      (e) =>
        (e.from.startsWith('test/') || (e.from.startsWith('src/') && isTest(e.from))) &&
        e.to.startsWith('bench/'),
    ).map(show)
    expect(bad).toEqual([])
  })
})
