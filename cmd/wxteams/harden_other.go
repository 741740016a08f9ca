//go:build !linux

package main

// hardenProcess does nothing outside Linux: there core dumps are left to the system's settings.
func hardenProcess() error { return nil }
