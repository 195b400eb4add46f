# Events the engine hands to its caller (see _events.pyx).

cdef class Event:
    pass

cdef class MessageReceived(Event):
    cdef readonly bytes msg_id
    cdef readonly bytes payload
    cdef readonly bint request

cdef class ResponseReceived(Event):
    cdef readonly bytes msg_id
    cdef readonly bytes reply_to
    cdef readonly bytes payload
    cdef readonly bint request

cdef class MessagesDelivered(Event):
    cdef readonly list msg_ids

cdef class MessageExpired(Event):
    cdef readonly bytes msg_id
    cdef readonly str reason

cdef class SessionClosed(Event):
    cdef readonly str reason
    cdef readonly bint by_peer

cdef MessageReceived new_message_received(bytes msg_id, bytes payload, bint request)
cdef ResponseReceived new_response_received(bytes msg_id, bytes reply_to, bytes payload, bint request)
