/* -*- c++ -*- ----------------------------------------------------------
   nequip_pol: compute pol/allegro: global vector (12) of the cell dipole P (e*A, 3 values)
   and the polarizability alpha (e*A^2/V, 9 values, row major) of the last evaluation of
   pair allegro/pol or nequip/pol, summed over MPI ranks.
------------------------------------------------------------------------- */

#ifdef COMPUTE_CLASS
// clang-format off
ComputeStyle(pol/allegro,ComputePolAllegro);
// clang-format on
#else

#ifndef LMP_COMPUTE_POL_ALLEGRO_H
#define LMP_COMPUTE_POL_ALLEGRO_H

#include "compute.h"

namespace LAMMPS_NS {

class PairPolBase;
PairPolBase *pol_find_pair(class LAMMPS *lmp, const char *what);

class ComputePolAllegro : public Compute {
 public:
  ComputePolAllegro(class LAMMPS *, int, char **);
  ~ComputePolAllegro() override;
  void init() override;
  void compute_vector() override;

 private:
  PairPolBase *pair = nullptr;
};

}    // namespace LAMMPS_NS

#endif
#endif
