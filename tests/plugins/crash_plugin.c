/* Misbehaving LADSPA plugins for the probe's tests (tests/plugins/test_probe.py), written from
 * the public facts of the LADSPA 1.1 interface; the descriptor is declared here, no header from
 * another project is included. One library, four descriptors, each mono in/out with a "Gain":
 *   4242001 dualtone_crash  run dereferences NULL (SIGSEGV)
 *   4242002 dualtone_hang   run never returns
 *   4242003 dualtone_nan    run writes NaN
 *   4242004 dualtone_alloc  run calls malloc and free (for the allocation audit)
 * Build: gcc -shared -fPIC -O1 -o dualtone_test.so crash_plugin.c */
#include <math.h>
#include <stdlib.h>

typedef float Data;
typedef void *Handle;

typedef struct { int hints; Data lower; Data upper; } RangeHint;

typedef struct Descriptor {
    unsigned long unique_id;
    const char *label;
    int properties;
    const char *name;
    const char *maker;
    const char *copyright;
    unsigned long port_count;
    const int *port_descriptors;
    const char *const *port_names;
    const RangeHint *port_range_hints;
    void *implementation_data;
    Handle (*instantiate)(const struct Descriptor *, unsigned long sample_rate);
    void (*connect_port)(Handle, unsigned long port, Data *location);
    void (*activate)(Handle);
    void (*run)(Handle, unsigned long sample_count);
    void (*run_adding)(Handle, unsigned long sample_count);
    void (*set_run_adding_gain)(Handle, Data gain);
    void (*deactivate)(Handle);
    void (*cleanup)(Handle);
} Descriptor;

/* port descriptor bits and range hints (values from the interface's definition) */
#define PORT_INPUT 0x1
#define PORT_OUTPUT 0x2
#define PORT_CONTROL 0x4
#define PORT_AUDIO 0x8
#define HINT_BELOW 0x1
#define HINT_ABOVE 0x2
#define HINT_DEFAULT_1 0x240

typedef struct { Data *gain; Data *in; Data *out; } Plugin;

static Handle instantiate(const Descriptor *d, unsigned long sample_rate) {
    (void)d; (void)sample_rate;
    return calloc(1, sizeof(Plugin));
}

static void connect_port(Handle h, unsigned long port, Data *location) {
    Plugin *p = (Plugin *)h;
    if (port == 0) p->gain = location;
    else if (port == 1) p->in = location;
    else if (port == 2) p->out = location;
}

static void cleanup(Handle h) { free(h); }

static Data *volatile nowhere;            /* NULL, unknown to the compiler (no trap instruction) */

static void run_crash(Handle h, unsigned long n) {
    (void)h; (void)n;
    *nowhere = 1.0f;                      /* SIGSEGV */
}

static void run_hang(Handle h, unsigned long n) {
    (void)h; (void)n;
    volatile unsigned long spin = 0;
    for (;;) spin++;                      /* never returns */
}

static void run_nan(Handle h, unsigned long n) {
    Plugin *p = (Plugin *)h;
    for (unsigned long i = 0; i < n; i++) p->out[i] = NAN * *p->gain * p->in[i];
}

static void run_alloc(Handle h, unsigned long n) {
    Plugin *p = (Plugin *)h;
    Data *volatile scratch = malloc(n * sizeof(Data));
    for (unsigned long i = 0; i < n; i++) p->out[i] = *p->gain * p->in[i];
    free(scratch);
}

static const int port_descriptors[3] = {PORT_INPUT | PORT_CONTROL, PORT_INPUT | PORT_AUDIO,
                                        PORT_OUTPUT | PORT_AUDIO};
static const char *const port_names[3] = {"Gain", "Input", "Output"};
static const RangeHint hints[3] = {{HINT_BELOW | HINT_ABOVE | HINT_DEFAULT_1, 0.0f, 2.0f},
                                   {0, 0.0f, 0.0f}, {0, 0.0f, 0.0f}};

#define DESCRIPTOR(ID, LABEL, NAME, RUN) \
    {ID, LABEL, 0, NAME, "Dualtone tests", "None", 3, port_descriptors, port_names, hints, NULL, \
     instantiate, connect_port, NULL, RUN, NULL, NULL, NULL, cleanup}

#define COUNT 4

static const Descriptor descriptors[COUNT] = {
    DESCRIPTOR(4242001, "dualtone_crash", "Dualtone Crash Test", run_crash),
    DESCRIPTOR(4242002, "dualtone_hang", "Dualtone Hang Test", run_hang),
    DESCRIPTOR(4242003, "dualtone_nan", "Dualtone NaN Test", run_nan),
    DESCRIPTOR(4242004, "dualtone_alloc", "Dualtone Allocating Test", run_alloc),
};

const Descriptor *ladspa_descriptor(unsigned long index) {
    return index < COUNT ? &descriptors[index] : NULL;
}
