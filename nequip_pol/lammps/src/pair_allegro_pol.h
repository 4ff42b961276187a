/* -*- c++ -*- ----------------------------------------------------------
   nequip_pol: pair style allegro/pol (strictly local field-aware Allegro models,
   MPI domain decomposition with ghost atoms, newton on).
------------------------------------------------------------------------- */

#ifdef PAIR_CLASS
// clang-format off
PairStyle(allegro/pol,PairAllegroPol);
// clang-format on
#else

#ifndef LMP_PAIR_ALLEGRO_POL_H
#define LMP_PAIR_ALLEGRO_POL_H

#include "pair_pol_base.h"

namespace LAMMPS_NS {

class PairAllegroPol : public PairPolBase {
 public:
  PairAllegroPol(class LAMMPS *);
  void init_style() override;

 protected:
  std::vector<std::string> required_inputs() const override;
  int build_inputs(std::unordered_map<std::string, at::Tensor> &inputs) override;
  std::vector<int> node_index;    // LAMMPS atom -> graph node (-1: not in the graph)
};

}    // namespace LAMMPS_NS

#endif
#endif
