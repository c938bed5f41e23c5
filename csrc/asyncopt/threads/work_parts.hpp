// The parts every Hogwild! work of the logistic family (threads/logistic.hpp, threads/multinomial.hpp)
// has in common, so a new loss writes only what one mini-batch does: the rule rebuilt per segment,
// the per-thread progressive-loss slots, and the deterministic evaluation pass.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "../core/parallel.hpp"
#include "../core/thread_pool.hpp"
#include "../optim/steps.hpp"
#include "../problems/logistic.hpp"

namespace asyncopt {

// The step tables of one segment and the rule built on them (optim/steps.hpp): the driver starts a
// segment at step k_base for at most n_updates updates, and a rule's per-update coefficients are
// table lookups inside it.
template <class Rule, class Steps>
class SegmentRule {
public:
    explicit SegmentRule(const StepConfig& sc) : sc_(sc) {}

    uint64_t max_segment_updates() const { return Rule::max_segment_updates(sc_); }

    void begin(uint64_t k_base, uint32_t n_updates) {
        rule_.reset();  // the rule points into the tables: drop it first
        tables_.reset();
        tables_.emplace(sc_, k_base, n_updates, Rule::needs);
        rule_.emplace(tables_->steps(), sc_);
    }

    const Rule& operator*() const { return *rule_; }

private:
    const StepConfig& sc_;
    std::optional<StepTables<Steps>> tables_;
    std::optional<Rule> rule_;
};

// One progressive-loss sum per thread, each written only by its own thread at its segment ends and
// added in thread order, so a one-thread epoch's figure is reproducible to the bit.
class ProgressSlots {
public:
    explicit ProgressSlots(int n_threads) : slots_(static_cast<size_t>(std::max(1, n_threads))) {}

    void merge(int thread, const logistic::ProgressiveLoss& p) const { slots_[static_cast<size_t>(thread)].merge(p); }

    logistic::ProgressiveLoss total() const {
        logistic::ProgressiveLoss sum;
        for (const logistic::ProgressiveLoss& p : slots_) sum.merge(p);
        return sum;
    }

private:
    mutable std::vector<logistic::ProgressiveLoss> slots_;
};

// The summed loss and correct predictions of a read-only pass over n_rows rows, in chunks on the
// elastic team: row(i, &loss, &correct) adds row i's figures. One partial sum per chunk, added in
// chunk order, so the result does not depend on which thread ran which chunk.
template <class Row>
void evaluate_rows(int n_threads, int64_t n_rows, double* loss_sum, int64_t* correct, Row&& row) {
    const int nt = have_openmp() ? std::max(1, n_threads) : 1;
    const int64_t chunk = 2048;
    std::vector<double> loss(static_cast<size_t>((n_rows + chunk - 1) / chunk), 0.0);
    std::vector<int64_t> ok(loss.size(), 0);
    ThreadPool::instance().parallel_chunks(nt, n_rows, chunk, [&](int64_t c, int64_t lo, int64_t hi) {
        double l = 0;
        int64_t k = 0;
        for (int64_t i = lo; i < hi; ++i) row(i, &l, &k);
        loss[static_cast<size_t>(c)] = l;
        ok[static_cast<size_t>(c)] = k;
    });
    double total = 0;
    int64_t right = 0;
    for (size_t c = 0; c < loss.size(); ++c) {
        total += loss[c];
        right += ok[c];
    }
    *loss_sum = total;
    *correct = right;
}

}  // namespace asyncopt
