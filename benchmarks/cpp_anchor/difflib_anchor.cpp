// A plain double-precision scalar C++ learner for the diff.lib examples, written from the
// behaviour described in shared/reference/difflib/README.md (sections 2 and 3) - no Faust or
// diff.lib code. It is the local machine calibration of benchmarks/learn_throughput.py: it does
// what the Faust-generated C++ of README section 5 does (only the structurally non-zero tangents,
// running-sum windows), so ours / this ratio is measured side by side on the same machine.
//
//   difflib_anchor CASE SAMPLES BLOCK REPEATS CHECK
//   -> prints "seconds <best of REPEATS>", "params p0 p1 ..." (mapped values after SAMPLES) and
//      "check p0 p1 ..." (after an untimed run of CHECK samples)
//
// CASE: gain gain+dc one-pole fir dcsq (README 3.1-3.5), fir16 fir64 biquad (benchmark extras).
// Per sample (README 2.2): p = map(theta); target y; learned yh with tangents t_i; sliding means
// M = (S[n] - S[n-W]) / W over running sums (2.3); e = M(yh) - M(y); loss; SGD step applied to
// theta at the next sample.  Maps are straight-through (2.6): the tangent seed stays 1.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

enum Loss { MSE, MAE };

// ---------------------------------------------------------------- circuits
// Each circuit: P, hidden values, map(k, theta), target(x), learned(x, p, t) -> yh (fills t[P]).

struct Gain {                                   // README 3.1
    static constexpr int P = 1;
    void reset() {}
    double map(int, double th) const { return th; }
    double target(double x) { return 0.5 * x; }
    double learned(double x, const double* p, double* t) { t[0] = x; return p[0] * x; }
};

struct GainDc {                                 // README 3.2
    static constexpr int P = 2;
    void reset() {}
    double map(int, double th) const { return th; }
    double target(double x) { return 0.5 * x + 0.5; }
    double learned(double x, const double* p, double* t) {
        t[0] = x; t[1] = 1.0;
        return p[0] * x + p[1];
    }
};

struct OnePole {                                // README 3.3, tangent carried through feedback
    static constexpr int P = 1;
    double y1, yh1, t1;
    void reset() { y1 = yh1 = t1 = 0.0; }
    double map(int, double th) const { return th < 0.99 ? th : 0.99; }
    double target(double x) { return y1 = x + 0.5 * y1; }
    double learned(double x, const double* p, double* t) {
        t1 = p[0] * t1 + yh1;                   // d/da (x + a*yh[n-1])
        t[0] = t1;
        return yh1 = x + p[0] * yh1;
    }
};

struct Dcsq {                                   // README 3.5
    static constexpr int P = 1;
    void reset() {}
    double map(int, double th) const { return th > 1e-10 ? th : 1e-10; }
    double target(double x) { return x + 0.75 * 0.75; }
    double learned(double x, const double* p, double* t) { t[0] = 2.0 * p[0]; return x + p[0] * p[0]; }
};

template <int N>                                // FIR, README 3.4 for N = 8
struct Fir {
    static constexpr int P = N;
    static constexpr int L = N <= 8 ? 8 : N <= 16 ? 16 : 64;   // ring length, power of two >= N
    double h[N], xs[L];
    long n;
    Fir() {
        for (int k = 0; k < N; ++k)              // fir: sin k; fir16/fir64: sin(k) * 0.9^k
            h[k] = N == 8 ? std::sin(double(k)) : std::sin(double(k)) * std::pow(0.9, k);
    }
    void reset() { std::memset(xs, 0, sizeof xs); n = -1; }
    double map(int, double th) const { return th; }
    double target(double x) {
        xs[++n & (L - 1)] = x;
        double y = 0.0;
        for (int k = 0; k < N; ++k) y += h[k] * xs[(n - k) & (L - 1)];
        return y;
    }
    double learned(double, const double* p, double* t) {   // runs after target(): x is in xs
        double y = 0.0;
        for (int k = 0; k < N; ++k) { t[k] = xs[(n - k) & (L - 1)]; y += p[k] * t[k]; }
        return y;
    }
};

struct Biquad {                                 // direct form I; params b0 b1 b2 a1 a2
    static constexpr int P = 5;
    static constexpr double H[5] = {0.09763107293781749, 0.19526214587563498, 0.09763107293781749,
                                    -0.9428090415820632, 0.3333333333333333};
    double x1, x2, y1, y2, yh1, yh2, t1[5], t2[5];
    void reset() {
        x1 = x2 = y1 = y2 = yh1 = yh2 = 0.0;
        std::memset(t1, 0, sizeof t1); std::memset(t2, 0, sizeof t2);
    }
    double map(int, double th) const { return th; }
    double target(double x) {
        double y = H[0] * x + H[1] * x1 + H[2] * x2 - H[3] * y1 - H[4] * y2;
        y2 = y1; y1 = y;
        return y;
    }
    double learned(double x, const double* p, double* t) {
        const double d[5] = {x, x1, x2, -yh1, -yh2};   // the seeded term of each parameter
        double y = p[0] * x + p[1] * x1 + p[2] * x2 - p[3] * yh1 - p[4] * yh2;
        for (int k = 0; k < 5; ++k) {
            t[k] = d[k] - p[3] * t1[k] - p[4] * t2[k];
            t2[k] = t1[k]; t1[k] = t[k];
        }
        x2 = x1; x1 = x; yh2 = yh1; yh1 = y;
        return y;
    }
};

// ---------------------------------------------------------------- the learning loop
template <class C, Loss LOSS>
struct Learner {
    static constexpr int P = C::P, NW = 2 + P;  // windowed signals: y, yh, t_0..t_{P-1}
    C c;
    int W, R;                                   // window, ring length (power of two > W)
    double lr, th[P], S[NW];
    std::vector<double> ring;                   // past running sums, NW per slot
    long n;

    Learner(int W_, double lr_) : W(W_), lr(lr_) {
        R = 1;
        while (R <= W) R <<= 1;
        ring.assign(size_t(R) * NW, 0.0);
        reset();
    }
    void reset() {
        c.reset();
        std::fill(ring.begin(), ring.end(), 0.0);
        for (int k = 0; k < P; ++k) th[k] = 0.0;
        for (int j = 0; j < NW; ++j) S[j] = 0.0;
        n = 0;
    }
    void compute(const double* x, double* out, int count) {
        double p[P], v[NW], g[P];
        const double invW = 1.0 / W;
        for (int i = 0; i < count; ++i, ++n) {
            for (int k = 0; k < P; ++k) p[k] = c.map(k, th[k]);
            v[0] = c.target(x[i]);
            v[1] = c.learned(x[i], p, v + 2);
            double* now = &ring[size_t(n & (R - 1)) * NW];
            const double* old = &ring[size_t((n - W) & (R - 1)) * NW];   // zeros while n < W
            for (int j = 0; j < NW; ++j) { S[j] += v[j]; now[j] = S[j]; }
            double e = (S[1] - old[1]) * invW - (S[0] - old[0]) * invW, L = 0.0;   // README 2.4
            if (LOSS == MSE) {
                L = e * e;
                for (int k = 0; k < P; ++k) g[k] = e * (2.0 * ((S[2 + k] - old[2 + k]) * invW));
            } else {
                L = std::fabs(e);
                const double d = L > 1e-10 ? L : 1e-10;
                for (int k = 0; k < P; ++k) g[k] = ((S[2 + k] - old[2 + k]) * invW) * e / d;
            }
            for (int k = 0; k < P; ++k) th[k] -= lr * g[k];   // SGD; used from sample n+1
            out[3 * i] = v[0]; out[3 * i + 1] = v[1]; out[3 * i + 2] = L;
        }
    }
};

// ---------------------------------------------------------------- driver
static std::vector<double> lcg_noise(long count) {          // README 2.8
    std::vector<double> x(count);
    long long s = 0;
    for (long i = 0; i < count; ++i) {
        s = (1103515245LL * s + 12345) & 0xFFFFFFFFLL;
        if (s >= 0x80000000LL) s -= 0x100000000LL;
        x[i] = double(s) / 2147483647.0;
    }
    return x;
}

template <class L>
static void print_params(const char* label, const L& l) {
    std::printf("%s", label);
    for (int k = 0; k < L::P; ++k) std::printf(" %.17g", l.c.map(k, l.th[k]));
    std::printf("\n");
}

template <class C, Loss LOSS>
static int run(int W, double lr, long samples, int block, int repeats, long check) {
    Learner<C, LOSS> l(W, lr);
    std::vector<double> x = lcg_noise(std::max({samples, check, 16L * block})), out(3 * size_t(block));
    for (int b = 0; b < 16; ++b) l.compute(&x[size_t(b) * block], out.data(), block);   // warm-up
    const double* input = x.data();                          // from n = 0 after each reset
    double best = 1e300;
    for (int r = 0; r < repeats; ++r) {
        l.reset();
        auto t0 = std::chrono::steady_clock::now();
        for (long done = 0; done < samples; done += block)
            l.compute(input + done, out.data(), int(std::min<long>(block, samples - done)));
        best = std::fmin(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("seconds %.9g\n", best);
    print_params("params", l);
    l.reset();
    for (long done = 0; done < check; done += block)
        l.compute(input + done, out.data(), int(std::min<long>(block, check - done)));
    print_params("check", l);
    return 0;
}

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s CASE SAMPLES BLOCK REPEATS CHECK\n", argv[0]);
        return 2;
    }
    std::string cs = argv[1];
    long samples = std::atol(argv[2]);
    int block = std::atoi(argv[3]), repeats = std::atoi(argv[4]);
    long check = std::atol(argv[5]);
    if (cs == "gain") return run<Gain, MAE>(32, 1e-3, samples, block, repeats, check);
    if (cs == "gain+dc") return run<GainDc, MSE>(32, 1e-2, samples, block, repeats, check);
    if (cs == "one-pole") return run<OnePole, MSE>(16, 5e-4, samples, block, repeats, check);
    if (cs == "fir") return run<Fir<8>, MSE>(8, 0.1, samples, block, repeats, check);
    if (cs == "dcsq") return run<Dcsq, MSE>(1, 1e-3, samples, block, repeats, check);
    if (cs == "fir16") return run<Fir<16>, MSE>(16, 0.1, samples, block, repeats, check);
    if (cs == "fir64") return run<Fir<64>, MSE>(16, 0.05, samples, block, repeats, check);
    if (cs == "biquad") return run<Biquad, MSE>(1, 1e-3, samples, block, repeats, check);
    std::fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
}
