package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQualificationTargetResolvesSecretsAndDerivesBadCredentials(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("tok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LAB_PASSWORD", "pw-from-env")
	file := filepath.Join(dir, "lab.yaml")
	write := func(body string) {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("address: https://127.0.0.1:1\ncredentials: {username: u, password: \"${env:LAB_PASSWORD}\", token: \"${file:" + token + "}\"}\n" +
		"bindings: [{kind: vip, name: a}]\n")
	cfg, err := loadQualificationTarget(file, "/x/certfleet-plugin-y")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Target.Credentials.Password != "pw-from-env" || cfg.Target.Credentials.Token != "tok-from-file" {
		t.Errorf("credentials not resolved: %v", cfg.Target.Credentials)
	}
	bad := cfg.BadCredentials
	if bad == nil || bad.Credentials.Password == "pw-from-env" || bad.Credentials.Token == "tok-from-file" || bad.Credentials.Username != "u" {
		t.Errorf("bad credentials must replace every secret: %+v", bad)
	}
	if cfg.UnknownBinding.Kind != "vip" || cfg.UnknownBinding.Name == "" {
		t.Errorf("default unknown binding: %+v", cfg.UnknownBinding)
	}
	for body, want := range map[string]string{
		"address: https://h\nbindings: [{kind: vip, name: a}]\ncredentials: {password: \"${env:CERTFLEET_NO_SUCH_VAR}\"}\n": "credentials.password: environment variable CERTFLEET_NO_SUCH_VAR is not set",
		"address: https://h\nbindings: [{kind: vip, name: a}]\ncredentials: {password: \"${vault:x}\"}\n":                   "use ${env:NAME} or ${file:PATH}",
		"address: https://h\n":                                                                     "bindings: list at least one place",
		"bindings: [{kind: vip, name: a}]\n":                                                       "address: required",
		"address: https://h\nbindings: [{kind: vip, name: a}]\nbindngs: []\n":                      "field bindngs not found",
		"address: https://h\nbindings: [{kind: vip, name: a}]\nunsupported: [rollback, rolback]\n": `unsupported[1]: unknown feature "rolback": use one of authentication, rollback, cleanup, ip-sans`,
	} {
		write(body)
		if _, err := loadQualificationTarget(file, "p"); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%q: %v, want an error naming the file and %q", body, err, want)
		}
	}
}
