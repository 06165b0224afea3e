/*
 * veil_device.h: the C interface of the Veil edge agent (libVeilDeviceC.so), for agents that
 * link instead of talking to the ingest socket. Version 1.
 *
 * A handle is opened over a state directory that `veil-device enrol` prepared. Every function
 * returns VEIL_OK (0) or an error code; veil_device_last_error() then says why, in English, until
 * the next call on the same handle. Observations are on disk when a record function returns
 * VEIL_OK. No Swift type crosses this boundary. A handle may be used from one thread at a time.
 */
#ifndef VEIL_DEVICE_H
#define VEIL_DEVICE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct veil_device veil_device;

enum {
    VEIL_OK = 0,
    VEIL_ERROR_ARGUMENT = 1,     /* a null or malformed argument */
    VEIL_ERROR_STATE = 2,        /* the state directory is missing, not enrolled or unusable */
    VEIL_ERROR_OBSERVATION = 3,  /* the observation was refused; nothing was stored */
    VEIL_ERROR_RUNNING = 4       /* the round loop is already running (here or in another process), or not running */
};

/* Opens the agent state at `state_directory`; *out receives the handle. */
int veil_device_open(const char *state_directory, veil_device **out);

/* Records one observation; `at` is seconds since the Unix epoch, or 0 for now. */
int veil_device_record_value(veil_device *device, const char *feature, double value, double at);
int veil_device_record_category(veil_device *device, const char *feature, const char *category, double at);
int veil_device_record_events(veil_device *device, const char *feature, int64_t events, double at);

/* Records JSON Lines (Protocols/device-ingest.md): all of them, or on a bad line none. */
int veil_device_record_json(veil_device *device, const char *json_lines);

/* Starts the round loop (what `veil-device run` does) on a background thread. Refused with
   VEIL_ERROR_RUNNING while another handle or process runs one over the same directory. */
int veil_device_start(veil_device *device);

/* Stops the round loop and waits for it: a round in flight is abandoned as a dropout. */
int veil_device_stop(veil_device *device);

/* The status as JSON (what `veil-device status --json` prints); free it with veil_device_free_string. */
int veil_device_status_json(veil_device *device, char **out);

/* Frees a string this library returned. */
void veil_device_free_string(char *string);

/* Why the last call on `device` failed; empty after a success. Owned by the handle. */
const char *veil_device_last_error(veil_device *device);

/* Stops the round loop if it runs and releases the handle. */
void veil_device_close(veil_device *device);

#ifdef __cplusplus
}
#endif
#endif
