/**
 * Signed feedback jobs: the controller signs every job it puts in a node's
 * queue with an Ed25519 key of the installation, and the node worker applies
 * only jobs whose signature verifies with the matching public key. Anyone
 * who can write to Redis can still queue a job, but not one the node runs.
 *
 * What is signed: the job's canonical JSON (keys sorted at every level,
 * `signature` left out) after a domain prefix, so every field counts: kind,
 * node, request id, probe, patch, TTL, created time, and the pre-signed TTL
 * revert an apply job carries. A changed byte anywhere fails verification.
 *
 * Keys: `<state dir>/feedback-signing.key` (PKCS#8 PEM, mode 0600, created on
 * first use like the API token) and `<state dir>/feedback-signing.pub` (SPKI
 * PEM, mode 0644), the file a node worker reads by default. A node on
 * another host is given a copy of the public key
 * (`NodeFeedbackWorkerOptions.verifyKeyPath`).
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../common/errors.js';
import { stateDir } from '../common/paths.js';
import { createFileOnce, readSecretFile } from '../common/secret-file.js';

/** Prepended to the canonical JSON before signing (a signature means nothing elsewhere). */
const DOMAIN = 'tracefeed.feedback.job.v1\n';

/** The private key file: `<state dir>/feedback-signing.key`. */
export function signingKeyPath(): string {
  return join(stateDir(), 'feedback-signing.key');
}

/** The public key file nodes verify with: `<state dir>/feedback-signing.pub`. */
export function verifyKeyPath(): string {
  return join(stateDir(), 'feedback-signing.pub');
}

/** JSON with object keys sorted at every level; undefined members left out (as JSON.stringify does). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The bytes a job's signature covers: everything but `signature`. */
function signedBytes(job: Record<string, unknown>): Buffer {
  const { signature: _ignored, ...rest } = job;
  return Buffer.from(DOMAIN + canonicalJson(rest), 'utf8');
}

function assertEd25519(key: KeyObject, file: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519')
    throw new ConfigError(
      `${file} holds a ${key.asymmetricKeyType ?? 'non-asymmetric'} key, not an Ed25519 key`,
      'signing_key',
      { hint: `remove ${file} (and its .pub) so that a new key pair is created` },
    );
  return key;
}

/** Signs jobs with the installation's private key. */
export class JobSigner {
  /** The public key, SPKI PEM (what nodes are configured with). */
  readonly publicKeyPem: string;

  constructor(private readonly key: KeyObject) {
    this.publicKeyPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
  }

  /** A verifier of this signer's jobs. */
  verifier(): JobVerifier {
    return JobVerifier.fromPem(this.publicKeyPem);
  }

  /** The job with its `signature` (base64), computed over a JSON round trip of it (what Redis keeps). */
  sign<T extends object>(job: T): T & { signature: string } {
    const plain = JSON.parse(JSON.stringify(job)) as Record<string, unknown>;
    delete plain.signature;
    const signature = sign(null, signedBytes(plain), this.key).toString('base64');
    return { ...(plain as T), signature };
  }
}

/** Verifies jobs with the controller's public key. */
export class JobVerifier {
  constructor(private readonly key: KeyObject) {}

  static fromPem(pem: string, file = 'the verify key'): JobVerifier {
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (err) {
      throw new ConfigError(`${file} does not hold a PEM public key`, 'verify_key', {
        cause: err,
        hint: `copy the controller's ${verifyKeyPath()} there`,
      });
    }
    return new JobVerifier(assertEd25519(key, file));
  }

  /** Why the job's signature is refused, or undefined when it verifies. */
  check(job: unknown): string | undefined {
    if (job === null || typeof job !== 'object' || Array.isArray(job))
      return 'the job is not an object';
    const sig = (job as Record<string, unknown>).signature;
    if (typeof sig !== 'string' || sig.length === 0)
      return 'the job carries no signature (not queued by the feedback controller)';
    const bytes = Buffer.from(sig, 'base64');
    if (bytes.length !== 64 || bytes.toString('base64') !== sig)
      return 'the job signature is not a base64 Ed25519 signature';
    let ok = false;
    try {
      ok = verify(null, signedBytes(job as Record<string, unknown>), this.key, bytes);
    } catch {
      ok = false;
    }
    return ok
      ? undefined
      : "the job signature does not verify with this node's key (the job was altered after signing, or not signed by the feedback controller)";
  }
}

/**
 * The installation's signer: the private key at `file`, created on first
 * use (Ed25519, mode 0600), and its public key written next to it
 * (`<file without .key>.pub`, mode 0644) when absent.
 */
export function loadOrCreateSigner(file: string = signingKeyPath()): JobSigner {
  const what = 'the feedback signing key';
  const hint = `run the controller as the user that owns ${file} (root)`;
  let pem: string;
  try {
    pem = readSecretFile(file, what, hint);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const { privateKey } = generateKeyPairSync('ed25519');
    createFileOnce(file, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
    pem = readSecretFile(file, what, hint);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new ConfigError(`${what} ${file} does not hold a PEM private key`, 'signing_key', {
      cause: err,
      hint: `remove ${file} (and its .pub) so that a new key pair is created`,
    });
  }
  const signer = new JobSigner(assertEd25519(key, file));
  const pub = file.replace(/\.key$/, '') + '.pub';
  createFileOnce(pub, signer.publicKeyPem, 0o644);
  if (readFileSync(pub, 'utf8') !== signer.publicKeyPem)
    throw new ConfigError(
      `${pub} does not hold the public key of ${file}: nodes reading it would refuse every job`,
      'signing_key',
      { hint: `remove ${pub} so that it is written again from ${file}` },
    );
  return signer;
}

/**
 * A node worker's verifier when none is configured: the installation's key
 * pair in the state directory, created on first use by whichever of the
 * controller and the node starts first (they share the state directory on
 * one host). A node on another host is configured with a copy of the
 * controller's public key instead (`loadVerifier(file)`).
 */
export function installationVerifier(): JobVerifier {
  return loadOrCreateSigner().verifier();
}

/**
 * A node's verifier from a public key file. The file must not be writable by
 * group or others (whoever can replace it can sign jobs for this node).
 */
export function loadVerifier(file: string = verifyKeyPath()): JobVerifier {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read the feedback verify key ${file}`, 'verify_key', {
      cause: err,
      hint: `start the feedback controller once (it creates ${verifyKeyPath()}) or copy its public key to ${file}`,
    });
  }
  if ((st.mode & 0o022) !== 0)
    throw new ConfigError(
      `the feedback verify key ${file} is writable by other users (mode ${(st.mode & 0o777).toString(8)}); refusing to use it`,
      'verify_key',
      { hint: `chmod 644 ${file}` },
    );
  return JobVerifier.fromPem(readFileSync(file, 'utf8'), file);
}
