// Package publish delivers the dispatcher's messages to NATS: to a
// JetStream stream with acknowledgements, de-duplication and fencing (the
// default), or to core NATS. Both implement dispatcher.Publisher.
package publish
