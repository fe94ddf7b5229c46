// Package eventgrid is an Event Grid namespace emulator: topics with pull
// delivery event subscriptions, served over HTTPS in the real wire format of
// api-version 2024-06-01, so that the unchanged aznamespaces SenderClient and
// ReceiverClient talk to it as they would to Azure.
//
// It keeps a queue per subscription, locks received events for a lock
// duration, redelivers on lock expiry or release, and dead-letters on reject
// or when the maximum delivery count is exceeded. Dead letters can be read back
// for assertions. Everything is in memory; nothing survives Close.
//
// The package imports nothing else of cmkd so that anyone may use it.
package eventgrid
