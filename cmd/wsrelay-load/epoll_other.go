//go:build !linux

package main

// epollReaders exist on Linux only; elsewhere clients read with goroutines.
type epollReaders struct{}

func startEpoll([]*sseClient, [][]byte, *sharded) *epollReaders { return nil }

func (*epollReaders) close() {}
