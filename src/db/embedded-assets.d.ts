/**
 * Module types for files that `src/db` embeds with import attributes: `with { type: 'file' }`
 * yields a path (`/$bunfs/root/…` inside a compiled binary), `with { type: 'text' }` the content.
 *
 * @module
 */

declare module '*.wasm' {
  /** Path of the embedded file. */
  const path: string
  export default path
}

declare module '*.data' {
  /** Path of the embedded file. */
  const path: string
  export default path
}

declare module '*.zst' {
  /** Path of the embedded file. */
  const path: string
  export default path
}

declare module '*.sql' {
  /** SQL text (imported `with { type: 'text' }`). */
  const text: string
  export default text
}
