/**
 * A push agent's proof of possession made by a real TPM: TPM2_Certify of the AK by itself over the
 * verifier's challenge (what rust-keylime's `generate_tpm_auth_proof` does). tpm2-tools 5.4's
 * `tpm2_certify` takes no qualifying data, so the command is marshalled here (TCG TPM 2.0 Library
 * Part 3 §18.2) and sent with `tpm2_send`, on an AK made persistent with `tpm2_evictcontrol`.
 *
 * @module
 */
import { ByteReader } from '../../src/tpm/byte-reader.ts'
import { ByteWriter } from '../../src/tpm/byte-writer.ts'
import { readTpmtSignature } from '../../src/tpm/signature.ts'
import type { Tpm2ToolsAgent } from './tpm2-tools-agent.ts'

/** Part 2 §6.5 TPM_CC_Certify; §6.9 TPM_ST_SESSIONS; §6.4.2 TPM_RS_PW. */
const CC_CERTIFY = 0x148
const ST_SESSIONS = 0x8002
const RS_PW = 0x40000009
const ALG_NULL = 0x0010

/** Makes the AK `ak-<tag>.ctx` persistent at `handle` (owner hierarchy). */
export function persistAk(agent: Tpm2ToolsAgent, tag: string, handle: number): void {
  agent.flushAll()
  agent.must(['tpm2_evictcontrol', '-C', 'o', '-c', `ak-${tag}.ctx`, `0x${handle.toString(16)}`])
  agent.flushAll()
}

/** The marshalled TPMS_ATTEST and TPMT_SIGNATURE of the AK at `handle` certifying itself. */
export function certifySelf(
  agent: Tpm2ToolsAgent,
  handle: number,
  qualifyingData: Uint8Array,
): { attest: Uint8Array; signature: Uint8Array } {
  const pw = new ByteWriter().u32(RS_PW).u16(0).u8(1).u16(0).finish() // empty password, continue
  const body = new ByteWriter()
    .u32(handle) // objectHandle
    .u32(handle) // signHandle
    .u32(pw.byteLength * 2)
    .bytes(pw)
    .bytes(pw)
    .tpm2b(qualifyingData)
    .u16(ALG_NULL) // inScheme: the key's own
    .finish()
  const cmd = new ByteWriter()
    .u16(ST_SESSIONS)
    .u32(10 + body.byteLength)
    .u32(CC_CERTIFY)
    .bytes(body)
    .finish()
  agent.flushAll()
  for (let attempt = 0; ; attempt++) {
    const p = Bun.spawnSync(['tpm2_send'], {
      cwd: agent.work,
      env: { ...process.env, TPM2TOOLS_TCTI: agent.tpm.tcti },
      stdin: cmd,
      stdout: 'pipe',
      stderr: 'pipe',
    })
    if (p.exitCode !== 0) throw new Error(`tpm2_send failed: ${p.stderr.toString()}`)
    const r = new ByteReader(new Uint8Array(p.stdout))
    r.u16() // tag
    r.u32() // size
    const rc = r.u32()
    // TPM_RC_RETRY / TPM_RC_YIELDED / TPM_RC_TESTING: tpm2_send does not retry as ESYS does
    if ((rc === 0x922 || rc === 0x908 || rc === 0x90a) && attempt < 20) continue
    if (rc !== 0) throw new Error(`TPM2_Certify failed: rc 0x${rc.toString(16)}`)
    return readCertifyResponse(r)
  }
}

/** The TPMS_ATTEST and TPMT_SIGNATURE of a TPM2_Certify response, after its header. */
function readCertifyResponse(r: ByteReader): { attest: Uint8Array; signature: Uint8Array } {
  r.u32() // parameterSize
  const attest = Uint8Array.from(r.tpm2b())
  const sigStart = r.offset
  readTpmtSignature(r)
  return { attest, signature: Uint8Array.from(r.source.subarray(sigStart, r.offset)) }
}
