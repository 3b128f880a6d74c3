package main

import "errors"

const defaultCA = "acme" // scm once the SCM simulator is wired in

func startSCM(w *world, o options) error {
	return errors.New("the SCM simulator is not available in this build; use --ca acme")
}
