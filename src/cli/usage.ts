/**
 * The `keylime --help` text.
 * @module
 */

/** Help for the `keylime` binary. */
export const KEYLIME_USAGE = `usage: keylime [--verifier] [--registrar]
       keylime <command> [args…]

Runs the Keylime control plane (verifier and registrar; both when no role flag is given) on the
configuration in /etc/keylime (verifier.conf, registrar.conf, ca.conf, logging.conf, their conf.d
snippets and KEYLIME_* variables) with its data in KEYLIME_DIR (default /var/lib/keylime).

commands:
  verifier | registrar     run one role (same as --verifier / --registrar)
  tenant …                 the tenant CLI (also as keylime_tenant)
  ca …                     the certificate authority (also as keylime_ca)
  policy …                 runtime and measured-boot policy tools (also as keylime-policy)
  health [--verifier] [--registrar] [--timeout S]
                           ask the running roles for GET /health over mTLS; exit 0 when healthy
                           (also as keylime-health)
  ear rotate | jwks        rotate the verifier's EAR signing key, or print its JWKS
  version                  print the version

The binary also answers to the names keylime_verifier, keylime_registrar, keylime_tenant,
keylime_ca, keylime-policy, keylime_create_policy, keylime_sign_runtime_policy,
keylime_convert_runtime_policy, keylime_userdata_encrypt and create_mb_refstate (symlinks),
taking upstream Keylime's arguments.
`
