/* -*- c++ -*- ----------------------------------------------------------
   nequip_pol: field-aware NequIP/Allegro pair styles for LAMMPS.
   Common base of pair styles allegro/pol and nequip/pol: loads an AOTInductor package
   compiled by nequip-compile (targets nequip_pol_pair_allegro / nequip_pol_pair_nequip),
   evaluates the electric enthalpy E(R, E) with a homogeneous field E (V/A), plus a per-atom
   field E_i from atom-style variables (targets *_atomic_field), and keeps the response outputs
   (cell dipole P, Born charges Z*, polarizability alpha, atomic dipoles p_i) of the last step
   for compute pol/allegro, compute born/atom, compute dipole/atom/pol and fix efield/born.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_POL_BASE_H
#define LMP_PAIR_POL_BASE_H

#include "atom.h"
#include "neigh_list.h"
#include "pair.h"

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace torch {
namespace inductor {
  class AOTIModelPackageLoader;
}
}    // namespace torch
namespace at {
class Tensor;
}

namespace LAMMPS_NS {

// one field component: a constant, an equal-style variable (v_name) or, for the pair styles,
// an atom-style variable (v_name: one value per atom, a field that varies in space)
struct PolFieldComponent {
  double value = 0.0;
  std::string varname;    // empty: constant
  int ivar = -1;
  bool atom = false;    // an atom-style variable (set by pol_init_field)
};

// parse "efield Ex Ey Ez" style arguments; shared by the pair styles and fix efield/born
void pol_parse_field(class LAMMPS *lmp, const char *what, char **arg, PolFieldComponent *comp);
// look the variables up; atom-style ones only where allow_atom (the pair styles)
void pol_init_field(class LAMMPS *lmp, const char *what, PolFieldComponent *comp,
                    bool allow_atom = false);
// the homogeneous (frame) field: constants and equal-style variables; 0 for atom-style components
void pol_eval_field(class LAMMPS *lmp, PolFieldComponent *comp, double *field);

class PairPolBase : public Pair {
 public:
  PairPolBase(class LAMMPS *);
  ~PairPolBase() override;

  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void compute(int, int) override;
  void finish() override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  double memory_usage() override;

  // ---- results of the last evaluation, read by the computes and fix efield/born ----
  bigint last_step = -1;     // timestep of the last evaluation
  double field[3] = {0, 0, 0};    // field used in the last evaluation (V/A)
  double pol_local[3] = {0, 0, 0};       // this rank's share of P (e*A)
  double alpha_local[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};    // this rank's share of alpha (row major)
  double **born = nullptr;      // per-atom Z*_i,ab (row major a,b), valid for local atoms
  double **dipole = nullptr;    // per-atom dipoles p_i = -dE/dE_i (e*A), local atoms
  bool has_pol = false, has_born = false, has_alpha = false, has_dipoles = false;
  bool has_field_input = false;
  // fields that vary in space: a component of efield is an atom-style variable; its values
  // (V/A, per atom, added to the frame field above) go to the model's input
  // atomic_electric_field, which the model must have (targets *_atomic_field)
  bool has_atomic_field_input = false;
  bool atomic_field_on = false;        // some efield component is atom-style (init_style)
  double **atomic_field = nullptr;     // (nmax, 3), V/A: local atoms and, after the forward
                                       // communication, ghosts (each carries its owner's value)
  bool field_is_set = false;    // pair_style got an efield keyword
  int nmax_resp = 0;
  // Born charges on demand: with "pair_style ... noborn FILE" the variant without Z* runs on
  // steps where no consumer needs them (fix efield/born: every step; compute born/atom: the
  // steps its consumers scheduled through LAMMPS' compute invocation lists)
  bigint born_step = -1;    // timestep whose Z* are in born[] (-1: none yet)
  bigint n_eval_born = 0, n_eval_noborn = 0;    // evaluations of each variant in this run
  bigint n_eval_extra = 0;    // full re-evaluations for Z* asked for after the force call
  bool born_on_demand() const { return loader_nb != nullptr; }
  // make born[] hold the Z* of the current step (collective: all ranks call it): copies those
  // the last force call left on the model's device (no consumer was defined at run set-up), or
  // re-runs the full model on the graph of this step's force call when the noborn variant ran
  void ensure_born(const char *who);

  const char *style_name;    // "allegro/pol" or "nequip/pol"
  // where the model runs: the device the package was compiled for (nequip-compile --device),
  // which the optional pair_style keyword "device cpu|cuda" must match
  std::string model_device = "cpu";

 protected:
  // ---- model ----
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::string model_path;
  std::unordered_map<std::string, std::string> metadata;
  std::vector<std::string> input_keys, output_keys;
  std::vector<std::string> model_type_names;
  std::vector<int> type_mapper;    // LAMMPS type (1..ntypes) -> model type index
  double r_max = 0.0;
  bool offset_set = false;
  // the model has the cell input and applies the offset itself (nequip_pol_pair_nequip targets)
  bool has_cell_input = false;
  double offset_frac[3] = {0, 0, 0};    // polarization_offset_fractional (P0 = f @ cell)
  int out_energy = -1, out_forces = -1, out_virial = -1, out_pol = -1, out_born = -1,
      out_alpha = -1, out_dipoles = -1;

  PolFieldComponent field_spec[3];
  std::string device_keyword;    // pair_style ... device cpu|cuda (empty: not given)
  int device_index = -1;         // CUDA device of this rank (-1: the CPU)
  void check_device(const std::string &path);

  // ---- the variant compiled without Born charges (optional, pair_style keyword noborn) ----
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_nb;
  std::string model_nb_path;    // set by settings(); loaded by coeff()
  std::vector<std::string> output_keys_nb;
  int nb_energy = -1, nb_forces = -1, nb_virial = -1, nb_pol = -1, nb_alpha = -1,
      nb_dipoles = -1;
  std::vector<class Compute *> born_computes;    // compute born/atom instances (init_style)
  bool born_fix = false;                         // a fix efield/born is defined (init_style)
  bool born_needed();
  std::vector<at::Tensor> *last_args = nullptr;    // inputs of the last force call
  int last_nnodes = 0;
  // Z* of the last force call while nothing has asked for them (still on the model's device)
  std::unique_ptr<at::Tensor> born_pending;
  void store_born(const at::Tensor &z, int nnodes);
  void load_noborn_model(const std::string &path);
  // graph node -> LAMMPS atom index (empty: node k is atom k); set by build_inputs
  std::vector<int> node_atom;

  // inputs required by the concrete style (besides the field)
  virtual std::vector<std::string> required_inputs() const = 0;
  // build the graph: fill the named inputs and return the number of graph nodes; nodes
  // 0..nlocal-1 are the local atoms, node k >= nlocal is atom node_atom[k] (a ghost)
  virtual int build_inputs(std::unordered_map<std::string, at::Tensor> &inputs) = 0;

  // the graph's edges: edge(i, j) for each local atom i and each neighbor j (local or ghost,
  // an index into atom->x) closer than r_max, in neighbor-list order; both styles build their
  // graphs from this one walk and differ only in how they number j
  template <typename EdgeFn> void for_each_edge(EdgeFn &&edge) const
  {
    double **x = atom->x;
    const double cut2 = r_max * r_max;
    const int inum = list->inum;
    for (int ii = 0; ii < inum; ii++) {
      const int i = list->ilist[ii];
      const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
      const int *jlist = list->firstneigh[i];
      const int jnum = list->numneigh[i];
      for (int jj = 0; jj < jnum; jj++) {
        const int j = jlist[jj] & NEIGHMASK;
        const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
        if (dx * dx + dy * dy + dz * dz < cut2) edge(i, j);
      }
    }
  }

  // the compile target for this style: the plain one, without Born charges and/or with the
  // per-atom field (e.g. nequip_pol_pair_allegro_atomic_field_no_born)
  std::string target_name(bool atomic, bool no_born) const;
  int nmax_atomic_field = 0;
  // evaluate the atom-style components on the local atoms and send them to the ghosts
  void eval_atomic_field();

  void allocate();
  void grow_response(int n);
  void load_model(const std::string &path);
  int find_output(const std::string &key) const;

  // ---- extrapolation guard: the training range in the model's metadata (written by
  // nequip_pol.guards when a checkpoint with recorded ranges is compiled), compared with the
  // field and the pair distances at every force call ----
  enum { GUARD_WARN, GUARD_ERROR, GUARD_OFF };
  int guard_mode = GUARD_WARN;                  // pair_style ... guard warn|error|off
  double guard_field_factor = 1.2;              // ... guard_field F: warn above F x max |E|
  double guard_distance_factor = 1.0;           // ... guard_distance D: below D x the minimum
  bool guard_has_ranges = false;                // the model has nequip_pol_max_field
  double guard_max_field = 0.0;                 // trained max |E| (V/A)
  std::vector<std::pair<std::string, double>> guard_pairs;    // "Ba-O" -> min distance (A)
  std::vector<double> guard_thr;    // (ntypes+1)^2: D x min distance per LAMMPS type pair (0: none)
  bool guard_announced = false;     // the guard's line for this model was printed
  bool guard_warned = false;        // the first case of this run was reported
  bigint guard_checked = 0, guard_n_field = 0, guard_n_distance = 0;    // this run
  bool guard_on() const { return guard_mode != GUARD_OFF && guard_has_ranges; }
  void guard_read_metadata(const std::string &path);
  void guard_init();     // init_style: type-pair thresholds, counts reset, the status line
  void guard_check();    // compute: field and pair distances against the range (collective)
  double largest_field();    // max over atoms of |E + E_i| (collective with a per-atom field)
};

}    // namespace LAMMPS_NS

#endif
