package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bot/teamsfake"
)

// selfSigned writes a certificate and its key as one PEM file, as WXTEAMS_BOT_CLIENT_CERT takes it.
func selfSigned(t *testing.T, dir string) (*x509.Certificate, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wxteams-bot"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	path := filepath.Join(dir, "bot.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

// Each way the bot can authenticate gets a Bot Framework token from the (fake) Entra ID through
// the real azidentity credential newBotCredential builds; a wrong one is refused with Entra's error.
func TestBotCredentials(t *testing.T) {
	entra := teamsfake.NewEntra(testTenant)
	ms := httptest.NewTLSServer(teamsfake.MicrosoftHandler(entra, nil))
	defer ms.Close()
	entra.URL = ms.URL
	dir := t.TempDir()

	const secretApp, certApp, fedApp, strangerApp = testBotApp, "4a1b2c3d-0000-4000-8000-000000000002", "4a1b2c3d-0000-4000-8000-000000000003", "4a1b2c3d-0000-4000-8000-000000000004"
	entra.AddClient(secretApp, "bot-secret")
	cert, certPath := selfSigned(t, dir)
	entra.AddCertificate(certApp, cert)
	_, strangerCert := selfSigned(t, t.TempDir())
	entra.AddCertificate(strangerApp, cert) // registered with another certificate than the one it presents
	fedFile := filepath.Join(dir, "federated-token")
	if err := os.WriteFile(fedFile, []byte("eyJ.projected.serviceaccount"), 0o600); err != nil {
		t.Fatal(err)
	}
	entra.AddFederated(fedApp, "eyJ.projected.serviceaccount")
	otherFile := filepath.Join(dir, "other-token")
	if err := os.WriteFile(otherFile, []byte("eyJ.another.cluster"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"client secret", map[string]string{"WXTEAMS_BOT_APP_ID": secretApp, "WXTEAMS_BOT_CLIENT_SECRET": "bot-secret"}, ""},
		{"wrong secret", map[string]string{"WXTEAMS_BOT_APP_ID": secretApp, "WXTEAMS_BOT_CLIENT_SECRET": "guess"}, "AADSTS7000215"},
		{"certificate", map[string]string{"WXTEAMS_BOT_APP_ID": certApp, "WXTEAMS_BOT_CLIENT_CERT": certPath}, ""},
		{"another certificate", map[string]string{"WXTEAMS_BOT_APP_ID": strangerApp, "WXTEAMS_BOT_CLIENT_CERT": strangerCert}, "AADSTS700027"},
		{"workload identity", map[string]string{"WXTEAMS_BOT_APP_ID": fedApp, "WXTEAMS_BOT_MANAGED_IDENTITY": "1", "AZURE_FEDERATED_TOKEN_FILE": fedFile}, ""},
		{"another cluster's token", map[string]string{"WXTEAMS_BOT_APP_ID": fedApp, "WXTEAMS_BOT_MANAGED_IDENTITY": "1", "AZURE_FEDERATED_TOKEN_FILE": otherFile}, "AADSTS700213"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"WXTEAMS_BOT_TENANT_ID": testTenant, "AZURE_AUTHORITY_HOST": ms.URL + "/"}
			for k, v := range c.env {
				env[k] = v
			}
			getenv := func(k string) string { return env[k] }
			cfg, err := loadConfig(getenv)
			if err != nil {
				t.Fatal(err)
			}
			cred, err := newBotCredential(cfg, getenv, ms.Client().Transport)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{bot.BotFrameworkScope}})
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("GetToken: %v", err)
			case c.wantErr == "" && !entra.Valid(tok.Token, bot.BotFrameworkScope):
				t.Errorf("token %q is not one Entra issued for the Bot Framework", tok.Token)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("GetToken = %v; want Entra's %s", err, c.wantErr)
			}
		})
	}
}
