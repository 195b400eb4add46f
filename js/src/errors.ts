// The errors relio raises, named by whose fault they are (h11's split): the peer sent something
// invalid (RemoteProtocolError), the application misused the API (LocalProtocolError), the outbox
// is full (QueueFull), a message will never be delivered (DeliveryError).

export class RelioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The peer broke the protocol; the session is closed with `protocol error: <reason>`. */
export class RemoteProtocolError extends RelioError {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** This side misused the engine (answering a request twice, a message over max_message_size). */
export class LocalProtocolError extends RelioError {}

/** The session's outbox is full (maxOutboxMessages / maxOutboxBytes): nothing was queued. */
export class QueueFull extends RelioError {}

/** A message will never be delivered (session closed or expired, or the peer could not answer). */
export class DeliveryError extends RelioError {
  constructor(readonly reason: string, readonly event: string | null = null) {
    super(event === null ? reason : `${reason} (event ${JSON.stringify(event)})`);
  }
}
