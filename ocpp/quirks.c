/* The table of what each OCPP 1.6J charger model accepts for charging profiles, chosen by the
 * BootNotification's vendor and model (case-insensitive prefixes) or by name from the config.
 * A model entry is added only with public evidence of how that model behaves, cited beside it.
 *
 * Stack levels, and why "stack level 0 only" is still coherent: phasewise installs a failsafe
 * TxDefaultProfile at default_stack_level and sends dynamic limits one level above it
 * (min(default_stack_level + 1, max_stack_level)). With TxProfile the two never collide even on
 * the same level: they have different purposes, and a TxProfile outranks any TxDefaultProfile
 * for its transaction (OCPP 1.6 section 3.13.2); when the transaction ends the charge point
 * discards the TxProfile and the failsafe default is in force again. Without TxProfile and with
 * only level 0, the dynamic TxDefaultProfile on a connector has the failsafe's purpose, level
 * and connector, so it replaces it; cp.c then re-sends the failsafe default when the
 * transaction ends instead of clearing, so the next session again starts at the failsafe. */
#include <stddef.h>
#include <strings.h>

#include "pw_ocpp_cp.h"

static const pw_ocpp_quirks quirks_table[] = {
    /* Matched by name only (vendor and model NULL would match anything: "default" is the
     * fallback of pw_ocpp_quirks_find, the others are chosen in the config). */
    {
        .name = "default",
        .note = "OCPP 1.6 as written: TxProfile for the running transaction one stack level above "
                "an Absolute TxDefaultProfile on connector 0, limits to 0.1 A, numberPhases",
        .tx_profile = true,
        .default_stack_level = 0,
        .max_stack_level = 8,
        .default_kind = PW_OCPP_ABSOLUTE,
        .default_on_connector0 = true,
        .whole_amps = false,
        .number_phases = true,
    },
    {
        .name = "tx-default-only",
        .note = "rejects TxProfile: the dynamic limit is a TxDefaultProfile one stack level above "
                "the failsafe one, cleared when the transaction ends",
        .tx_profile = false,
        .default_stack_level = 0,
        .max_stack_level = 8,
        .default_kind = PW_OCPP_ABSOLUTE,
        .default_on_connector0 = true,
        .whole_amps = false,
        .number_phases = true,
    },
    {
        .name = "stack0",
        .note = "takes stack level 0 only: the failsafe TxDefaultProfile and the dynamic TxProfile "
                "share level 0 (different purposes: the TxProfile outranks the default)",
        .tx_profile = true,
        .default_stack_level = 0,
        .max_stack_level = 0,
        .default_kind = PW_OCPP_ABSOLUTE,
        .default_on_connector0 = true,
        .whole_amps = false,
        .number_phases = true,
    },
    {
        .name = "whole-amps",
        .note = "takes whole amperes only: limits are rounded down to 1 A",
        .tx_profile = true,
        .default_stack_level = 0,
        .max_stack_level = 8,
        .default_kind = PW_OCPP_ABSOLUTE,
        .default_on_connector0 = true,
        .whole_amps = true,
        .number_phases = true,
    },
    /* ABB Terra AC (BootNotification vendor "ABB", model "CDT_TACW11::NET_WIFI",
     * "CDT_TACW22::NET_WIFI": lbbrhzn/ocpp issue #1275, evcc-io/evcc issue #17979). Firmware
     * 1.8 rejects a TxDefaultProfile at stackLevel 3 and accepts it at 0, and evcc then
     * controls it with one TxDefaultProfile at level 0 on connector 1 (evcc-io/evcc issue
     * #15493). So: no TxProfile, level 0 only, the failsafe default on the connector itself
     * (the dynamic one replaces it; cp.c restores it after each transaction). */
    {
        .name = "abb-terra-ac",
        .vendor = "ABB",
        .model = "CDT_TACW",
        .note = "ABB Terra AC: takes TxDefaultProfile at stack level 0 only (evcc-io/evcc#15493)",
        .tx_profile = false,
        .default_stack_level = 0,
        .max_stack_level = 0,
        .default_kind = PW_OCPP_ABSOLUTE,
        .default_on_connector0 = false,
        .whole_amps = false,
        .number_phases = true,
    },
    /* Wallbox (Pulsar Plus "PLP1-...", Copper SB "CPB1-..."; vendor "Wall Box Chargers":
     * evcc-io/evcc issue #15492, ConnectorIO/connectorio-addons PR #148). Takes charging
     * profiles at stack level 0 only (sap-labs-france/ev-server issue #3996 and PR #3997,
     * evcc-io/evcc issue #15581 "stacklevelzero"), and follows Relative default profiles where
     * Absolute ones are not well supported (evcc-io/evcc PR #25042). evcc drives it with
     * TxDefaultProfile, so phasewise does the same. */
    {
        .name = "wallbox",
        .vendor = "Wall Box Chargers",
        .model = NULL,
        .note = "Wallbox: stack level 0 only, Relative TxDefaultProfile (evcc-io/evcc#25042)",
        .tx_profile = false,
        .default_stack_level = 0,
        .max_stack_level = 0,
        .default_kind = PW_OCPP_RELATIVE,
        .default_on_connector0 = false,
        .whole_amps = false,
        .number_phases = true,
    },
};

static int prefix_match(const char *prefix, const char *s)
{
    if (prefix == NULL) {
        return 1;
    }
    if (s == NULL) {
        return 0;
    }
    size_t n = 0;
    while (prefix[n] != '\0') {
        n++;
    }
    return strncasecmp(prefix, s, n) == 0;
}

const pw_ocpp_quirks *pw_ocpp_quirks_find(const char *vendor, const char *model)
{
    for (size_t i = 0; i < sizeof(quirks_table) / sizeof(quirks_table[0]); i++) {
        const pw_ocpp_quirks *q = &quirks_table[i];
        /* Entries without vendor and model are chosen by name only. */
        if (q->vendor == NULL && q->model == NULL) {
            continue;
        }
        if (prefix_match(q->vendor, vendor) && prefix_match(q->model, model)) {
            return q;
        }
    }
    return &quirks_table[0];
}

const pw_ocpp_quirks *pw_ocpp_quirks_by_name(const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(quirks_table) / sizeof(quirks_table[0]); i++) {
        if (strcasecmp(quirks_table[i].name, name) == 0) {
            return &quirks_table[i];
        }
    }
    return NULL;
}

const pw_ocpp_quirks *pw_ocpp_quirks_at(size_t i)
{
    if (i >= sizeof(quirks_table) / sizeof(quirks_table[0])) {
        return NULL;
    }
    return &quirks_table[i];
}
