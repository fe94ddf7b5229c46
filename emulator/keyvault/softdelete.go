package keyvault

import (
	"fmt"
	"net/http"
	"strconv"
)

// Soft-delete retention bounds, in days, as Key Vault and Managed HSM
// accept them (softDeleteRetentionInDays).
const (
	MinRetentionDays = 7
	MaxRetentionDays = 90
)

// defaultRetention is the retention a zero retention means: Azure's default
// of 90 days under purge protection; without it, the 7 days of the vaults
// the SDK's recorded tests ran against, which this emulator always had.
func defaultRetention(purgeProtection bool) int {
	if purgeProtection {
		return MaxRetentionDays
	}
	return MinRetentionDays
}

// softDelete is a vault's soft-delete setting; days 0 means the default.
type softDelete struct {
	PurgeProtection bool `json:"purge_protection"`
	RetentionDays   int  `json:"retention_days,omitempty"`
}

func (sd softDelete) days() int {
	if sd.RetentionDays == 0 {
		return defaultRetention(sd.PurgeProtection)
	}
	return sd.RetentionDays
}

// recoveryLevel is DeletionRecoveryLevel as Key Vault derives it: plain
// "Recoverable" for the full 90 days, "CustomizedRecoverable" for a
// shorter retention, and "+Purgeable" unless purge protection is on.
func (sd softDelete) recoveryLevel() string {
	l := "Recoverable"
	if sd.days() < MaxRetentionDays {
		l = "CustomizedRecoverable"
	}
	if !sd.PurgeProtection {
		l += "+Purgeable"
	}
	return l
}

func validRetention(days int) error {
	if days != 0 && (days < MinRetentionDays || days > MaxRetentionDays) {
		return fmt.Errorf("%w: soft-delete retention must be %d to %d days (or 0 for the default), not %d",
			ErrInvalidConfig, MinRetentionDays, MaxRetentionDays, days)
	}
	return nil
}

// softDelete is the setting in force: the one set at run time (kept in
// the vault, so a StateFile keeps it), else Config's.
func (s *Server) softDelete() softDelete {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	if sd := s.vault.softDelete; sd != nil {
		return *sd
	}
	return softDelete{PurgeProtection: s.cfg.PurgeProtection, RetentionDays: s.cfg.RetentionDays}
}

// SoftDelete reports whether purge protection is on and the soft-delete
// retention in days that deleted keys get (the default resolved).
func (s *Server) SoftDelete() (purgeProtection bool, retentionDays int) {
	sd := s.softDelete()
	return sd.PurgeProtection, sd.days()
}

// SetSoftDelete changes purge protection and the retention at run time;
// retentionDays 0 means the default (90 days with purge protection, 7
// without). Keys deleted from then on are scheduled for purge after the
// new retention; keys already deleted keep their scheduled purge date.
// The setting outlives a restart from the same Config.StateFile, where it
// takes precedence over Config. Key Vault itself never turns purge
// protection off once on, nor changes the retention of a vault; the
// emulator allows both so that one vault can serve tests of each setting.
func (s *Server) SetSoftDelete(purgeProtection bool, retentionDays int) error {
	if err := validRetention(retentionDays); err != nil {
		return err
	}
	s.vault.mu.Lock()
	s.vault.softDelete = &softDelete{PurgeProtection: purgeProtection, RetentionDays: retentionDays}
	s.vault.mu.Unlock()
	s.persist()
	return nil
}

// purgeProtected is Key Vault's refusal to purge under purge protection
// (message as reported by users of the real service and Microsoft's docs).
func purgeProtected(vaultName string) *apiError {
	return &apiError{status: http.StatusForbidden, code: "Forbidden", msg: "Operation \"purge\" is not allowed because " +
		"purge protection is enabled for this vault. Key Vault service will automatically purge it after the " +
		"retention period has passed.\nVault: " + vaultName + ";location=" + region}
}

type softDeleteReq struct {
	PurgeProtection *bool `json:"purge_protection"`
	RetentionDays   int   `json:"retention_days"`
}

type softDeleteResp struct {
	PurgeProtection bool   `json:"purge_protection"`
	RetentionDays   int    `json:"retention_days"`
	RecoveryLevel   string `json:"recovery_level"`
}

func (s *Server) controlSoftDelete(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		sd := s.softDelete()
		writeJSON(w, http.StatusOK, softDeleteResp{PurgeProtection: sd.PurgeProtection, RetentionDays: sd.days(), RecoveryLevel: sd.recoveryLevel()})
		return
	}
	var req softDeleteReq
	if !decodeControl(w, r, &req) {
		return
	}
	if req.PurgeProtection == nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "Property purge_protection is required.", "")
		return
	}
	if err := s.SetSoftDelete(*req.PurgeProtection, req.RetentionDays); err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "Property retention_days must be 0 or "+
			strconv.Itoa(MinRetentionDays)+" to "+strconv.Itoa(MaxRetentionDays)+".", "")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
