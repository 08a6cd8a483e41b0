/**
 * The instance protocol (`/slapmesh/instance/2.0.0`): an owner reserves, confirms, updates, watches, renews
 * and lists its instances on a host; a host reports an instance's status and connection parameters to its
 * owner, and asks the owner whether its copy is still current (docs/instances.md).
 *
 * A node keeps one stream per connection open for its calls, a session (session.ts): each request is a
 * JSON message (`{"op": …, …fields}`, at most MAX_INSTANCE_REQUEST_BYTES) in a length-prefixed frame that
 * starts with a 4-byte id; each answer (at most MAX_INSTANCE_ANSWER_BYTES), `{"ok": true, …}` or `{"ok":
 * false, "code", "reason"}`, comes back in a frame with the request's id, in the order the service answers.
 * Every field is checked on both sides (messages.ts); a request that breaks the rules is answered `invalid`
 * and logged, a frame that cannot be read ends the session. The handler never reads an owner from a message:
 * it gives its service the PeerId of the connection, so a peer only ever addresses its own instances.
 *
 * @example
 * ```ts
 * const instances = instanceProtocol({})({ libp2p: node, logger: log })
 * instances.setService(host) // the node's InstanceService
 * await instances.start()
 * const answer = await instances.reserve(peerId, { reference, release, type, parameters, state: 'started' }, { signal })
 * if (!answer.ok) log(`${answer.code}: ${answer.reason}`)
 * ```
 */
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { Instance } from './instance.js';
import type { AnswerOf, InstancePlacement, InstanceReport, InstanceRequest, InstanceUpdate } from './messages.js';

export * from './constants.js';
export * from './errors.js';
export {
  checkAnswer, checkInstanceRequest, checkMessage, toMessage,
  type Answer, type AnswerOf, type Empty, type InstanceMessage, type InstanceOp, type InstancePlacement, type InstanceRefusal,
  type InstanceReport, type InstanceRequest, type InstanceResults, type InstanceUpdate, type InstanceView, type MessageOf,
  type RefusalCode, type RequestedState,
} from './messages.js';

type Awaitable<T> = T | Promise<T>;

/**
 * What the node does with each request. `from` is the PeerId (string) of the connection the request came
 * on, never a field of the message; the signal aborts at the handler's timeout. A refusal is an answer
 * (`{ok: false, code, reason}`); a throw is a bug: logged, and the peer is answered `busy`.
 */
export interface InstanceService {
  /** Owner → host: admit the instance and hold a partition for a lease (ms), or refuse. */
  reserve(from: string, request: InstanceRequest, signal: AbortSignal): Awaitable<AnswerOf<'reserve'>>;
  /** Owner → host: the reservation becomes the placement with this epoch (`stale` for an older one). */
  confirm(from: string, reference: string, epoch: number, signal: AbortSignal): Awaitable<AnswerOf<'confirm'>>;
  /** Owner → host: a re-request where it is placed (parameters, type, state). */
  update(from: string, update: InstanceUpdate, signal: AbortSignal): Awaitable<AnswerOf<'update'>>;
  status(from: string, reference: string, signal: AbortSignal): Awaitable<AnswerOf<'status'>>;
  /** Owner → host: the hosting leases of these placements; `unknown` those the host does not have (at that epoch). */
  renew(from: string, instances: InstancePlacement[], signal: AbortSignal): Awaitable<AnswerOf<'renew'>>;
  /** Owner → host: the instances `from` has here. */
  list(from: string, signal: AbortSignal): Awaitable<AnswerOf<'list'>>;
  /** Host → owner: an instance's status and connection parameters (`stale` when `from` no longer hosts it at that epoch). */
  report(from: string, report: InstanceReport, signal: AbortSignal): Awaitable<AnswerOf<'report'>>;
  /** Host → owner: whether `from` still holds the current placement of the instance at `epoch`. */
  check(from: string, reference: string, epoch: number, signal: AbortSignal): Awaitable<AnswerOf<'check'>>;
}

export interface InstanceInit {
  /** The service answering requests; until one is set (here or with setService) every request is answered `busy`. */
  service?: InstanceService;
  /** Default bound of each call, with or without the caller's signal (default INSTANCE_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Bound of the service's work on one request, and of writing its answer (default INSTANCE_HANDLER_TIMEOUT_MS). */
  handlerTimeoutMs?: number;
  /** An open session with no call in progress is closed after this long (default SESSION_IDLE_MS). */
  sessionIdleMs?: number;
}

/** The node's log for this component (node/log.ts's Logger fits). */
export interface InstanceLogger {
  (message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

export interface InstanceComponents {
  /** The libp2p node: registers the handler, dials peers. */
  libp2p: Pick<Libp2p, 'handle' | 'unhandle' | 'dial'>;
  logger: InstanceLogger;
}

/** Who to call: a PeerId, or addresses of the peer. */
export type InstancePeer = PeerId | Multiaddr | Multiaddr[];

/**
 * The calls. Each resolves with the peer's answer, done or refused, and rejects with
 * InvalidInstanceRequestError (arguments that break the rules; nothing is sent), InstanceTimeoutError,
 * InvalidInstanceAnswerError, the caller's abort reason, or libp2p's errors (UnsupportedProtocolError when
 * the peer does not serve the protocol, dial and stream errors).
 */
export interface InstanceClient {
  reserve(peer: InstancePeer, request: InstanceRequest, options?: AbortOptions): Promise<AnswerOf<'reserve'>>;
  confirm(peer: InstancePeer, reference: string, epoch: number, options?: AbortOptions): Promise<AnswerOf<'confirm'>>;
  update(peer: InstancePeer, update: InstanceUpdate, options?: AbortOptions): Promise<AnswerOf<'update'>>;
  status(peer: InstancePeer, reference: string, options?: AbortOptions): Promise<AnswerOf<'status'>>;
  renew(peer: InstancePeer, instances: InstancePlacement[], options?: AbortOptions): Promise<AnswerOf<'renew'>>;
  list(peer: InstancePeer, options?: AbortOptions): Promise<AnswerOf<'list'>>;
  report(peer: InstancePeer, report: InstanceReport, options?: AbortOptions): Promise<AnswerOf<'report'>>;
  check(peer: InstancePeer, reference: string, epoch: number, options?: AbortOptions): Promise<AnswerOf<'check'>>;
}

export interface InstanceProtocol extends InstanceClient {
  /** Registers the handler. */
  start(): Promise<void>;
  /** Unregisters it. */
  stop(): Promise<void>;
  /** The service for the requests to come (undefined: answer `busy` again). */
  setService(service: InstanceService | undefined): void;
}

export function instanceProtocol(init: InstanceInit = {}): (components: InstanceComponents) => InstanceProtocol {
  return (components) => new Instance(components, init);
}
